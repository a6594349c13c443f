// Reading a conversation: every message says when it was sent (in the reader's time zone
// with JavaScript, in UTC without), messages sit under their day's divider, and one
// author's consecutive messages are grouped under one name. Runs with and without JS.

import {
  expect,
  jsEnabled,
  messageEntries,
  messageLog,
  openRoom,
  sendMessage,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";

test("messages show their time, under their day, grouped by author", async ({ users }) => {
  const room = uniqueRoom("times");
  const ada = uniqueName("Ada");
  const bob = uniqueName("Bob");
  const a = await users.open();
  await startRoom(a.page, ada, room);
  const first = uniqueText("first from Ada");
  const second = uniqueText("second from Ada");
  await sendMessage(a.page, first);
  await expect(messageEntries(a.page, first)).toHaveCount(1);
  await sendMessage(a.page, second);
  await expect(messageEntries(a.page, second)).not.toContainText("Sending…");
  const b = await users.open();
  await openRoom(b.page, room, bob);
  const reply = uniqueText("reply from Bob");
  await sendMessage(b.page, reply);
  await expect(messageEntries(b.page, reply)).not.toContainText("Sending…");

  // A reader half an hour off whole hours from UTC, so local and UTC times differ.
  const v = await users.open({ timezoneId: "Asia/Kolkata" });
  await openRoom(v.page, room, uniqueName("Vera"));
  const log = messageLog(v.page);
  await expect(log.getByRole("separator", { name: "Today" })).toHaveCount(1);

  for (const text of [first, second, reply]) {
    const time = messageEntries(v.page, text).locator("time");
    await expect(time).toHaveAttribute("datetime", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const instant = new Date((await time.getAttribute("datetime")) ?? "");
    const two = (n: number) => String(n).padStart(2, "0");
    const expected = jsEnabled()
      ? new Intl.DateTimeFormat("en-GB", {
          hour: "2-digit",
          minute: "2-digit",
          hourCycle: "h23",
          timeZone: "Asia/Kolkata",
        }).format(instant)
      : `${two(instant.getUTCHours())}:${two(instant.getUTCMinutes())} UTC`;
    await expect(time).toHaveText(expected);
  }

  // Ada's name is shown once over her two messages (still read out with each), then Bob's.
  const shownAuthors = () =>
    log.evaluate((el) =>
      Array.from(el.querySelectorAll(".author"))
        .filter((a) => a.getBoundingClientRect().width > 1)
        .map((a) => a.textContent),
    );
  await expect.poll(shownAuthors).toEqual([ada, bob]);
  await expect(messageEntries(v.page, second)).toContainText(ada);
});

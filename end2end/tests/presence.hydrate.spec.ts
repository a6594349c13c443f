// The Online list shows each person once, however many tabs they have open,
// and drops them shortly after their last tab closes (grace is 1 s in tests).

import {
  expect,
  messageEntries,
  onlineEntries,
  onlineList,
  openRoom,
  sendMessage,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";

test("a person is listed once across tabs and leaves with the last tab", async ({ users }) => {
  const alice = uniqueName("Alice");
  const bob = uniqueName("Bob");
  const room = uniqueRoom("presence");

  // A fresh room, so nobody from other tests is in the list.
  const a = await users.open();
  await startRoom(a.page, alice, room);
  await expect(onlineEntries(a.page, alice)).toHaveCount(1);

  // Bob's first tab.
  const b = await users.open();
  await openRoom(b.page, room, bob);
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);
  await expect(onlineEntries(b.page, alice)).toHaveCount(1);
  await expect(onlineList(a.page).getByRole("listitem")).toHaveCount(2);

  // Bob's second tab: same person (same cookie), so still one entry.
  const bobTab2 = await b.context.newPage();
  await openRoom(bobTab2, room, bob);
  await expect(onlineEntries(bobTab2, bob)).toHaveCount(1);
  await expect(onlineEntries(bobTab2, alice)).toHaveCount(1);
  // Presence changes and messages reach Alice in the order the room made them: a message
  // from Bob's second tab, once shown, comes after any duplicate entry its join would add.
  const marker = uniqueText("marker");
  await sendMessage(bobTab2, marker);
  await expect(messageEntries(a.page, marker)).toHaveCount(1);
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);
  await expect(onlineList(a.page).getByRole("listitem")).toHaveCount(2);

  // Closing one of Bob's tabs keeps him online past the grace period. Carol leaves just
  // after that tab closes: once her departure is shown, Bob's would have been too.
  const carol = uniqueName("Carol");
  const c = await users.open();
  await openRoom(c.page, room, carol);
  await expect(onlineEntries(a.page, carol)).toHaveCount(1);
  await bobTab2.close();
  await c.page.close();
  await expect(onlineEntries(a.page, carol)).toHaveCount(0, { timeout: 5_000 });
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);

  // Closing the last one removes him within a few seconds; Alice stays.
  await b.page.close();
  await expect(onlineEntries(a.page, bob)).toHaveCount(0, { timeout: 5_000 });
  await expect(onlineEntries(a.page, alice)).toHaveCount(1);
});

// The Online list shows each person once, however many tabs they have open,
// and drops them shortly after their last tab closes (grace is 1 s in tests).

import {
  expect,
  onlineEntries,
  onlineList,
  openRoom,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
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
  // Give a duplicate entry time to show up before asserting there is none.
  await a.page.waitForTimeout(1_000);
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);
  await expect(onlineList(a.page).getByRole("listitem")).toHaveCount(2);

  // Closing one of Bob's tabs keeps him online, well past the grace period.
  await bobTab2.close();
  await a.page.waitForTimeout(2_500);
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);

  // Closing the last one removes him within a few seconds; Alice stays.
  await b.page.close();
  await expect(onlineEntries(a.page, bob)).toHaveCount(0, { timeout: 5_000 });
  await expect(onlineEntries(a.page, alice)).toHaveCount(1);
});

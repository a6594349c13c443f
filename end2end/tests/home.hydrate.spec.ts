// The home page's room list keeps its online counts fresh while it is open, without a
// reload: someone entering a room shows up in its count within a few seconds.

import {
  expect,
  openRoom,
  roomLinks,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
} from "./fixtures";

test("the room list's online counts follow people in and out of a room", async ({ users }) => {
  const room = uniqueRoom("count");

  const a = await users.open();
  await startRoom(a.page, uniqueName("Ivy"), room);
  await a.page.getByRole("link", { name: "← Rooms" }).click();
  // Ivy left the room; the list says nobody is in it (presence has a short grace period).
  await expect(roomLinks(a.page, room)).toContainText("0 online", { timeout: 10_000 });

  const b = await users.open();
  await openRoom(b.page, room, uniqueName("Jo"));
  await expect(roomLinks(a.page, room)).toContainText("1 online", { timeout: 10_000 });

  await b.page.close();
  await expect(roomLinks(a.page, room)).toContainText("0 online", { timeout: 10_000 });
});

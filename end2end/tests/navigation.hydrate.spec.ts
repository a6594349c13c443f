// With JavaScript on, moving between pages by link, Back and Forward happens in place: the
// document is never reloaded (a marker on `window` survives), and leaving a room ends this
// tab's presence there as closing the tab would.

import {
  expect,
  expectSameDocument,
  messageEntries,
  onlineEntries,
  openRoom,
  roomLinks,
  sendMessage,
  setMarker,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitUntilInRoom,
} from "./fixtures";

test("links, Back and Forward change pages in place, and leaving a room leaves it", async ({ users }) => {
  const ana = uniqueName("Ana");
  const ben = uniqueName("Ben");
  const room = uniqueRoom("nav");

  const b = await users.open();
  await startRoom(b.page, ben, room);

  const a = await users.open();
  await openRoom(a.page, room, ana);
  await expect(onlineEntries(b.page, ana)).toHaveCount(1);
  await setMarker(a.page);

  // The room's "← Rooms" link: the home page, in place; Ana leaves the room.
  await a.page.getByRole("link", { name: "← Rooms" }).click();
  await expect(a.page).toHaveURL(/\/$/);
  await expect(a.page.getByRole("heading", { name: "Rooms" })).toBeVisible();
  await expect(onlineEntries(b.page, ana)).toHaveCount(0, { timeout: 5_000 });

  // Back: the room again, live, and Ana is back in its Online list.
  await a.page.goBack();
  await expect(a.page).toHaveURL(new RegExp(`/r/${room}$`));
  await waitUntilInRoom(a.page);
  await expect(onlineEntries(b.page, ana)).toHaveCount(1);

  // Forward, then the room's link in the home page's list.
  await a.page.goForward();
  await expect(a.page.getByRole("heading", { name: "Rooms" })).toBeVisible();
  await roomLinks(a.page, room).click();
  await expect(a.page).toHaveURL(new RegExp(`/r/${room}$`));
  await expect(a.page.getByRole("heading", { level: 1 })).toContainText(room);
  await waitUntilInRoom(a.page);
  await expectSameDocument(a.page);
});

test("leaving a room with an unsent message still leaves it, and the message goes out on return", async ({ users }) => {
  const ana = uniqueName("Ana");
  const ben = uniqueName("Ben");
  const room = uniqueRoom("navout");

  const b = await users.open();
  await startRoom(b.page, ben, room);

  // Ana's `send` frames are held back (everything else passes), so her message stays in
  // the outbox, unacknowledged, while her socket is connected.
  const a = await users.open();
  let holdSends = true;
  await a.context.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((frame) => {
      if (holdSends && typeof frame === "string" && frame.includes('"type":"send"')) return;
      server.send(frame);
    });
  });
  await openRoom(a.page, room, ana);
  await expect(onlineEntries(b.page, ana)).toHaveCount(1);
  const text = uniqueText("left unsent");
  await sendMessage(a.page, text);
  await expect(messageEntries(a.page, text)).toContainText("Sending…");

  // Leaving the room, in place: Ben stops seeing her there at once (an explicit leave has no
  // grace period, and a message still in the outbox does not keep the tab listed).
  await a.page.getByRole("link", { name: "← Rooms" }).click();
  await expect(a.page.getByRole("heading", { name: "Rooms" })).toBeVisible();
  await expect(onlineEntries(b.page, ana)).toHaveCount(0, { timeout: 5_000 });
  await expect(messageEntries(b.page, text)).toHaveCount(0);

  // Back in the room, with sends let through: the kept message is delivered, once.
  holdSends = false;
  await a.page.goBack();
  await waitUntilInRoom(a.page);
  await expect(onlineEntries(b.page, ana)).toHaveCount(1);
  await expect(messageEntries(b.page, text)).toHaveCount(1);
  await expect(messageEntries(a.page, text)).toHaveCount(1);
  await expect(messageEntries(a.page, text)).not.toContainText("Sending…");
});

test("an address that names no page says so, with status 404", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Back to the rooms" })).toBeVisible();
});

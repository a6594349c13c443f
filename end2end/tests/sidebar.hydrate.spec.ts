// The sidebar of rooms: a link per room the person has opened, named with its unread count,
// counts that follow new messages live, reading in one tab clearing the count in the other,
// and the "New messages" divider above the first unread message when the room opens.

import {
  createRoom,
  expect,
  messageBox,
  messageEntries,
  onlineList,
  openRoom,
  registerAccount,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitForHydration,
  waitUntilInRoom,
} from "./fixtures";
import type { Page } from "@playwright/test";

const roomsNav = (page: Page) => page.getByRole("navigation", { name: "Rooms" });
const roomLink = (page: Page, name: string) => roomsNav(page).getByRole("link", { name, exact: true });

test("unread counts follow new messages live and reading in one tab clears the other", async ({ users }) => {
  const [design, lobby] = [uniqueRoom("design"), uniqueRoom("lobby")];
  const [ada, bob] = [uniqueName("Ada"), uniqueName("Bob")];
  const a = await users.open();
  await registerAccount(a.page, ada);
  await createRoom(a.page, design);
  await waitUntilInRoom(a.page);
  await a.page.goto("/");
  await waitForHydration(a.page);
  await createRoom(a.page, lobby);
  await waitUntilInRoom(a.page);
  await expect(roomLink(a.page, lobby)).toHaveAttribute("aria-current", "page");
  await expect(roomLink(a.page, design)).not.toHaveAttribute("aria-current");

  // A second tab of Ada's, on the same room.
  const a2 = await a.context.newPage();
  await a2.goto(`/r/${lobby}`);
  await waitForHydration(a2);
  await waitUntilInRoom(a2);

  const b = await users.open();
  await openRoom(b.page, design, bob);
  const texts = [uniqueText("one"), uniqueText("two"), uniqueText("three")];
  for (const text of texts) {
    await sendMessage(b.page, text);
    await expect(messageEntries(b.page, text)).not.toContainText("Sending…");
  }
  for (const page of [a.page, a2]) {
    await expect(roomLink(page, `${design}, 3 unread`)).toBeVisible();
  }

  // Ada reads it in her first tab: the room opens at the first unread message...
  await roomLink(a.page, `${design}, 3 unread`).click();
  await expect(a.page).toHaveURL(new RegExp(`/r/${design}$`));
  const divider = a.page.getByRole("log", { name: "Messages" }).getByRole("separator", { name: "New messages" });
  await expect(divider).toBeVisible();
  const after = await divider.evaluate((el) => el.nextElementSibling?.textContent ?? "");
  expect(after).toContain(texts[0]);
  await expect(roomLink(a.page, design)).toHaveAttribute("aria-current", "page");
  // ... and the other tab's count clears without a reload.
  await expect(roomLink(a2, design)).toBeVisible();
  await expect(roomsNav(a2).getByRole("link", { name: /unread/ })).toHaveCount(0);
});

test("on a phone the rooms and the people fold into menus, one open at a time", async ({ users }) => {
  const room = uniqueRoom("phone");
  const ada = uniqueName("Ada");
  const a = await users.open();
  await a.page.setViewportSize({ width: 390, height: 800 });
  await openRoom(a.page, room, ada);
  const roomsButton = a.page.getByRole("button", { name: "Rooms", exact: true });
  const peopleButton = a.page.getByRole("button", { name: "People", exact: true });
  await expect(roomsButton).toHaveAttribute("aria-expanded", "false");
  await expect(roomsNav(a.page)).toBeHidden();
  await expect(onlineList(a.page)).toBeHidden();
  await expect(messageBox(a.page)).toBeVisible();

  await roomsButton.click();
  await expect(roomsButton).toHaveAttribute("aria-expanded", "true");
  await expect(roomLink(a.page, room)).toHaveAttribute("aria-current", "page");
  await expect(onlineList(a.page)).toBeHidden();

  await peopleButton.click();
  await expect(peopleButton).toHaveAttribute("aria-expanded", "true");
  await expect(roomsButton).toHaveAttribute("aria-expanded", "false");
  await expect(roomsNav(a.page)).toBeHidden();
  await expect(onlineList(a.page).getByRole("listitem").filter({ hasText: ada })).toBeVisible();

  await peopleButton.click();
  await expect(onlineList(a.page)).toBeHidden();

  // On a wide window there is nothing to fold: no menu buttons, everything shown.
  await a.page.setViewportSize({ width: 1280, height: 800 });
  await expect(roomsButton).toBeHidden();
  await expect(roomsNav(a.page)).toBeVisible();
  await expect(onlineList(a.page)).toBeVisible();
});

// Mentions, two people in two browsers: the composer's "Mention someone" list (arrow keys and
// Enter, or a click) completes a name; a message that mentions someone is highlighted for
// them only; the sidebar link of a room gains ", N mentions" for its unread mentions; and
// `@here` calls on everyone online in the room.

import {
  expect,
  messageBox,
  messageEntries,
  onlineEntries,
  openRoom,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";
import type { Page } from "@playwright/test";

const mentionList = (page: Page) => page.getByRole("listbox", { name: "Mention someone" });
const roomLink = (page: Page, name: string) =>
  page.getByRole("navigation", { name: "Rooms" }).getByRole("link", { name, exact: true });

test("the composer completes a mention by keyboard or click, and it is highlighted for the person", async ({
  users,
}) => {
  const room = uniqueRoom("mention");
  const [ada, bob] = [uniqueName("Ada"), uniqueName("Bob")];
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, ada);
  await openRoom(b.page, room, bob);
  await expect(onlineEntries(b.page, ada)).toHaveCount(1);

  // "@" lists who is here (not oneself) and `here`; arrows move, Enter completes.
  const box = messageBox(b.page);
  await box.pressSequentially("@");
  const list = mentionList(b.page);
  await expect(list).toBeVisible();
  await expect(list.getByRole("option", { name: ada, exact: true })).toHaveAttribute("aria-selected", "true");
  await expect(list.getByRole("option", { name: "here", exact: true })).toBeVisible();
  await expect(list.getByRole("option", { name: bob, exact: true })).toHaveCount(0);
  await box.press("ArrowDown");
  await expect(list.getByRole("option", { name: "here", exact: true })).toHaveAttribute("aria-selected", "true");
  await box.press("ArrowUp");
  await box.press("Enter");
  await expect(list).toHaveCount(0);
  await expect(box).toHaveValue(`@${ada} `);
  const ask = uniqueText("can you look?");
  await box.pressSequentially(ask);
  await box.press("Enter");
  await expect(messageEntries(a.page, ask)).toHaveClass(/\bmention\b/);
  await expect(messageEntries(b.page, ask)).not.toHaveClass(/\bmention\b/);

  // Letters narrow the list; a click completes; Escape closes it without completing.
  await box.pressSequentially(`thanks @${ada.slice(0, 3).toLowerCase()}`);
  await expect(list.getByRole("option")).toHaveCount(1);
  await list.getByRole("option", { name: ada, exact: true }).click();
  await expect(box).toHaveValue(`thanks @${ada} `);
  await expect(box).toBeFocused();
  await box.pressSequentially("and @");
  await expect(list).toBeVisible();
  await box.press("Escape");
  await expect(list).toHaveCount(0);
  await expect(box).toHaveValue(`thanks @${ada} and @`);
  await box.fill("");

  // `@here` calls on everyone online: Ada's entry is highlighted, not the sender's.
  const standup = uniqueText("standup now @here");
  await sendMessage(b.page, standup);
  await expect(messageEntries(a.page, standup)).toHaveClass(/\bmention\b/);
  await expect(messageEntries(b.page, standup)).not.toHaveClass(/\bmention\b/);
});

test("the sidebar counts unread mentions live and after a reload", async ({ users }) => {
  const [design, lobby] = [uniqueRoom("design"), uniqueRoom("lobby")];
  const [ada, bob] = [uniqueName("Ada"), uniqueName("Bob")];
  const a = await users.open();
  const b = await users.open();
  await openRoom(b.page, design, bob);
  const hello = uniqueText("hello");
  await sendMessage(b.page, hello);
  // Ada (named in the lobby) reads the room, then moves on: it stays in her sidebar.
  await openRoom(a.page, lobby, ada);
  await openRoom(a.page, design, ada);
  await expect(messageEntries(a.page, hello)).toHaveCount(1);
  await openRoom(a.page, lobby, ada);
  await expect(roomLink(a.page, design)).toBeVisible();

  await sendMessage(b.page, uniqueText(`@${ada} a question`));
  await expect(roomLink(a.page, `${design}, 1 unread, 1 mention`)).toBeVisible();
  await sendMessage(b.page, uniqueText("no one in particular"));
  await expect(roomLink(a.page, `${design}, 2 unread, 1 mention`)).toBeVisible();
  await sendMessage(b.page, uniqueText(`and @${ada.toUpperCase()} again`));
  await expect(roomLink(a.page, `${design}, 3 unread, 2 mentions`)).toBeVisible();

  // The server counts them too.
  await a.page.reload();
  await expect(roomLink(a.page, `${design}, 3 unread, 2 mentions`)).toBeVisible();

  // Reading the room clears both.
  await roomLink(a.page, `${design}, 3 unread, 2 mentions`).click();
  await expect(a.page).toHaveURL(new RegExp(`/r/${design}$`));
  await expect(roomLink(a.page, design)).toHaveAttribute("aria-current", "page");
});

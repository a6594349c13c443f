// The forms work as plain HTML: this spec runs in the `nojs` project (no
// JavaScript at all, every submit is a real POST and a new page) and again in
// the `js` project, where the same steps must give the same result.

import {
  connectionStatus,
  createRoom,
  enterDisplayName,
  expect,
  jsEnabled,
  messageBox,
  messageEntries,
  sendButton,
  setNameOnHome,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitForHydration,
} from "./fixtures";

test("setting a display name is remembered", async ({ page }) => {
  const name = uniqueName("Nora");
  await page.goto("/");
  await expect(page.getByRole("link", { name: /^general/ })).toBeVisible();
  await enterDisplayName(page, name);
  await expect(page.getByText(`You are ${name}`).first()).toBeVisible();

  // The cookie keeps it across a fresh load.
  await page.goto("/");
  await expect(page.getByText(`You are ${name}`).first()).toBeVisible();
});

test("an invalid room name is refused with an explanation", async ({ page }) => {
  await setNameOnHome(page, uniqueName("Nora"));
  const alert = page.getByRole("alert").filter({ hasText: /\w/ });
  for (const bad of ["no spaces allowed", "semi;colon", "x".repeat(33)]) {
    // Start clean each time so one attempt's message can't stand in for another's.
    await page.goto("/");
    await waitForHydration(page);
    await expect(alert).toHaveCount(0);
    await page.getByRole("textbox", { name: "Room name" }).fill(bad);
    await page.getByRole("button", { name: "Create room" }).click();
    await expect(alert).toBeVisible();
    await expect(alert).toContainText(/letters|digits|characters|1.32/i);
    await expect(page).not.toHaveURL(/\/r\//);
  }
  // None of them shows up as a room.
  await page.goto("/");
  await expect(page.getByRole("link", { name: /^no spaces allowed/ })).toHaveCount(0);
});

test("a valid room can be created, opened and written in", async ({ page }) => {
  const name = uniqueName("Nora");
  const room = uniqueRoom("nojs");
  await setNameOnHome(page, name);
  await createRoom(page, room);

  // The new room is listed on the home page.
  await page.goto("/");
  await expect(page.getByRole("link", { name: new RegExp(`^${room}`) })).toBeVisible();
  await page.getByRole("link", { name: new RegExp(`^${room}`) }).click();
  await expect(page).toHaveURL(new RegExp(`/r/${room}$`));
  await expect(page.getByRole("heading", { level: 1 })).toContainText(room);

  // Post with the button.
  const first = uniqueText("posted with the button");
  await messageBox(page).fill(first);
  await sendButton(page).click();
  const entry = messageEntries(page, first);
  await expect(entry).toHaveCount(1);
  await expect(entry).toContainText(name);

  // Post with Enter.
  const second = uniqueText("posted with Enter");
  await messageBox(page).fill(second);
  await messageBox(page).press("Enter");
  await expect(messageEntries(page, second)).toHaveCount(1);
  await expect(messageEntries(page, first)).toHaveCount(1);

  // Both are part of the room's history on a fresh load.
  await page.reload();
  await expect(messageEntries(page, first)).toHaveCount(1);
  await expect(messageEntries(page, second)).toHaveCount(1);

  await expect(connectionStatus(page)).toContainText(jsEnabled() ? "Connected" : "Offline", {
    timeout: 15_000,
  });
});

test("the room page asks for a name before showing the composer", async ({ page }) => {
  await page.goto("/r/general");
  await expect(page.getByRole("heading", { level: 1 })).toContainText("general");
  await expect(messageBox(page)).toHaveCount(0);
  const name = uniqueName("Nora");
  await enterDisplayName(page, name);
  await expect(messageBox(page)).toBeVisible();
  // leptos_axum strips its error parameters from the URL but may leave a bare "?".
  await expect(page).toHaveURL(/\/r\/general\??$/);
});

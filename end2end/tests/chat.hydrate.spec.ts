// Two people in one room see each other's messages live, without reloading.

import {
  expect,
  messageBox,
  messageEntries,
  openRoom,
  sendButton,
  test,
  uniqueName,
  uniqueText,
} from "./fixtures";

test("a message sent by one person reaches the other within a second", async ({ users }) => {
  const alice = uniqueName("Alice");
  const bob = uniqueName("Bob");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, "general", alice);
  await openRoom(b.page, "general", bob);

  // Alice clicks Send; Bob must see it in his log within 1 s of the click.
  const hello = uniqueText("hello from Alice");
  await messageBox(a.page).fill(hello);
  await sendButton(a.page).click();
  const onBob = messageEntries(b.page, hello);
  await expect(onBob).toBeVisible({ timeout: 1_000 });
  await expect(onBob).toContainText(alice);
  await expect(onBob).toHaveCount(1);

  // Alice sees her own message once, with her name on it (a pending copy, if
  // the UI shows one, must give way to the delivered one).
  const onAlice = messageEntries(a.page, hello);
  await expect(onAlice).toHaveCount(1);
  await expect(onAlice).toContainText(alice);

  // Bob answers with Enter instead of the button.
  const reply = uniqueText("reply from Bob");
  await messageBox(b.page).fill(reply);
  await messageBox(b.page).press("Enter");
  const replyOnAlice = messageEntries(a.page, reply);
  await expect(replyOnAlice).toBeVisible({ timeout: 1_000 });
  await expect(replyOnAlice).toContainText(bob);
  await expect(messageEntries(b.page, reply)).toHaveCount(1);

  // Live delivery, not a reload: Bob's earlier message list is still in place
  // and neither page navigated to see the new entries.
  await expect(messageEntries(b.page, hello)).toHaveCount(1);
  await expect(a.page).toHaveURL(/\/r\/general$/);
});

test("history is there for someone who opens the room later", async ({ users }) => {
  const a = await users.open();
  await openRoom(a.page, "general", uniqueName("Alice"));
  const text = uniqueText("before Carol came");
  await messageBox(a.page).fill(text);
  await sendButton(a.page).click();
  await expect(messageEntries(a.page, text)).toHaveCount(1);

  const c = await users.open();
  await openRoom(c.page, "general", uniqueName("Carol"));
  await expect(messageEntries(c.page, text)).toHaveCount(1);
});

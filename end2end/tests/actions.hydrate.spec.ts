// Acting on messages, two people in two browsers: editing and deleting one's own message
// (live for the other person, and after a reload), no Edit or Delete on someone else's
// message, and reactions toggled and counted with aria-pressed.

import {
  expect,
  messageEntries,
  openRoom,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";

test("edit and delete one's own message, seen live and after a reload", async ({ users }) => {
  const room = uniqueRoom("acts");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, uniqueName("Ada"));
  await openRoom(b.page, room, uniqueName("Bob"));
  const [typo, secret, kept] = [uniqueText("Mornin all"), uniqueText("a secret"), uniqueText("kept")];
  for (const text of [typo, secret, kept]) {
    await sendMessage(a.page, text);
    await expect(messageEntries(b.page, text)).toHaveCount(1);
  }

  // Bob may react to Ada's message but not edit or delete it.
  const theirs = messageEntries(b.page, typo);
  await expect(theirs.getByRole("button", { name: "Add reaction" })).toBeVisible();
  await expect(theirs.getByRole("button", { name: "Edit message" })).toHaveCount(0);
  await expect(theirs.getByRole("button", { name: "Delete message" })).toHaveCount(0);

  // Ada edits: Enter saves, and the message shows "(edited)" to both.
  const fixed = uniqueText("Morning all");
  await messageEntries(a.page, typo).getByRole("button", { name: "Edit message" }).click();
  const box = a.page.getByRole("textbox", { name: "Edit message" });
  await expect(box).toHaveValue(typo);
  await expect(box).toBeFocused();
  await box.fill(fixed);
  await box.press("Enter");
  await expect(box).toHaveCount(0);
  for (const page of [a.page, b.page]) {
    await expect(messageEntries(page, fixed)).toContainText("(edited)");
    await expect(messageEntries(page, typo)).toHaveCount(0);
  }

  // Escape cancels an edit and changes nothing.
  await messageEntries(a.page, kept).getByRole("button", { name: "Edit message" }).click();
  await a.page.getByRole("textbox", { name: "Edit message" }).press("Escape");
  await expect(a.page.getByRole("textbox", { name: "Edit message" })).toHaveCount(0);
  await expect(messageEntries(a.page, kept)).not.toContainText("(edited)");

  // Ada deletes, confirming in the dialog.
  await messageEntries(a.page, secret).getByRole("button", { name: "Delete message" }).click();
  const dialog = a.page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole("button", { name: "Delete", exact: true })).toBeFocused();
  await dialog.getByRole("button", { name: "Delete", exact: true }).click();
  for (const page of [a.page, b.page]) {
    await expect(messageEntries(page, secret)).toHaveCount(0);
    await expect(messageEntries(page, "This message was deleted.")).toHaveCount(1);
  }

  // A reload shows the same: the store holds the current state.
  await b.page.reload();
  await expect(messageEntries(b.page, fixed)).toContainText("(edited)");
  await expect(messageEntries(b.page, secret)).toHaveCount(0);
  await expect(messageEntries(b.page, "This message was deleted.")).toHaveCount(1);
});

test("reactions toggle, count, and say who chose them", async ({ users }) => {
  const room = uniqueRoom("react");
  const [ada, bob] = [uniqueName("Ada"), uniqueName("Bob")];
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, ada);
  await openRoom(b.page, room, bob);
  const text = uniqueText("ship it?");
  await sendMessage(a.page, text);
  await expect(messageEntries(b.page, text)).toHaveCount(1);

  // Bob picks 👍 from "Add reaction".
  const onB = messageEntries(b.page, text);
  await onB.getByRole("button", { name: "Add reaction" }).click();
  await onB.getByRole("button", { name: "👍", exact: true }).click();
  await expect(onB.getByRole("button", { name: "👍 1", exact: true })).toHaveAttribute("aria-pressed", "true");
  const onA = messageEntries(a.page, text);
  const thumbsA = onA.getByRole("button", { name: "👍 1", exact: true });
  await expect(thumbsA).toHaveAttribute("aria-pressed", "false");
  await expect(thumbsA).toHaveAttribute("title", bob);

  // Ada adds hers by clicking the reaction; Bob takes his back.
  await thumbsA.click();
  await expect(onA.getByRole("button", { name: "👍 2", exact: true })).toHaveAttribute("aria-pressed", "true");
  await expect(onB.getByRole("button", { name: "👍 2", exact: true })).toHaveAttribute("title", `${bob}, ${ada}`);
  await onB.getByRole("button", { name: "👍 2", exact: true }).click();
  await expect(onB.getByRole("button", { name: "👍 1", exact: true })).toHaveAttribute("aria-pressed", "false");
  await expect(onA.getByRole("button", { name: "👍 1", exact: true })).toHaveAttribute("title", ada);

  // The count survives a reload.
  await b.page.reload();
  await expect(messageEntries(b.page, text).getByRole("button", { name: "👍 1", exact: true })).toBeVisible();
});

// Editing and deleting one's own message as plain HTML forms: this spec runs in the `nojs`
// project (every button is a real GET or POST and a new page) and again with JavaScript,
// where the same steps must give the same result.

import {
  createRoom,
  expect,
  messageBox,
  messageEntries,
  sendButton,
  setNameOnHome,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";

test("edit and delete work as forms, and the page shows the result", async ({ users }) => {
  const room = uniqueRoom("formacts");
  const v = await users.open();
  await setNameOnHome(v.page, uniqueName("Nora"));
  await createRoom(v.page, room);
  const [first, second] = [uniqueText("first draft"), uniqueText("to be deleted")];
  for (const text of [first, second]) {
    await messageBox(v.page).fill(text);
    await sendButton(v.page).click();
    await expect(messageEntries(v.page, text)).toHaveCount(1);
    await expect(messageEntries(v.page, text)).not.toContainText("Sending…");
  }

  const better = uniqueText("second draft");
  await messageEntries(v.page, first).getByRole("button", { name: "Edit message" }).click();
  const box = v.page.getByRole("textbox", { name: "Edit message" });
  await expect(box).toHaveValue(first);
  await box.fill(better);
  await v.page.getByRole("button", { name: "Save" }).click();
  await expect(messageEntries(v.page, better)).toContainText("(edited)");
  await expect(messageEntries(v.page, first)).toHaveCount(0);

  await messageEntries(v.page, second).getByRole("button", { name: "Delete message" }).click();
  await v.page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
  await expect(messageEntries(v.page, second)).toHaveCount(0);
  await expect(messageEntries(v.page, "This message was deleted.")).toHaveCount(1);

  await v.page.reload();
  await expect(messageEntries(v.page, better)).toContainText("(edited)");
  await expect(messageEntries(v.page, "This message was deleted.")).toHaveCount(1);
});

// Typing: while one person types, the others in the room read "… is typing…" under the log;
// it goes when the message is sent, and nobody is ever told that they themselves are typing.

import { expect, messageBox, messageEntries, openRoom, sendButton, test, uniqueName, uniqueRoom, uniqueText } from "./fixtures";

test("typing is shown to the others and cleared when the message is sent", async ({ users }) => {
  const room = uniqueRoom("typing");
  const ada = uniqueName("Ada");
  const bob = uniqueName("Bob");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, ada);
  await openRoom(b.page, room, bob);

  await messageBox(a.page).pressSequentially("hello th");
  await expect(b.page.getByText(`${ada} is typing…`)).toBeVisible();

  // Bob types too: Ada reads about Bob, Bob still reads about Ada, nobody about themselves.
  await messageBox(b.page).pressSequentially("hi");
  await expect(a.page.getByText(`${bob} is typing…`)).toBeVisible();
  await expect(b.page.getByText(`${ada} is typing…`)).toBeVisible();
  await expect(a.page.getByText(/is typing…/)).not.toContainText(ada);
  await expect(b.page.getByText(/is typing…/)).not.toContainText(bob);

  // Ada sends: her "is typing" goes for Bob as her message arrives.
  const text = uniqueText("hello there");
  await messageBox(a.page).fill(text);
  await sendButton(a.page).click();
  await expect(messageEntries(b.page, text)).toHaveCount(1);
  await expect(b.page.getByText(`${ada} is typing…`)).toHaveCount(0);
});

test("two typists are named together, and typing lapses when the keys stop", async ({ users }) => {
  const room = uniqueRoom("typing");
  const [ada, bob, cy] = [uniqueName("Ada"), uniqueName("Bob"), uniqueName("Cy")];
  const [a, b, c] = [await users.open(), await users.open(), await users.open()];
  await openRoom(a.page, room, ada);
  await openRoom(b.page, room, bob);
  await openRoom(c.page, room, cy);

  await messageBox(a.page).pressSequentially("a");
  await expect(c.page.getByText(`${ada} is typing…`)).toBeVisible();
  await messageBox(b.page).pressSequentially("b");
  await expect(c.page.getByText(`${ada} and ${bob} are typing…`)).toBeVisible();
  // Nobody types any more: the note empties by itself (it lapses 6 s after the last frame).
  await expect(c.page.getByText(/are typing…|is typing…/)).toHaveCount(0, { timeout: 15_000 });
});

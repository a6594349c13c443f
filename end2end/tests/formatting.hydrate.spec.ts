// A formatted message looks the same live as after a reload, and the composer takes
// several lines (Shift+Enter) and sends with Enter.

import { expect, messageBox, messageEntries, openRoom, test, uniqueName, uniqueRoom, uniqueText } from "./fixtures";

test("a formatted message looks the same live and after a reload", async ({ users }) => {
  const room = uniqueRoom("mdlive");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, uniqueName("Ada"));
  await openRoom(b.page, room, uniqueName("Bob"));
  const text = uniqueText("live");
  // Shift+Enter starts a new line; Enter sends.
  await messageBox(a.page).fill(`**${text}**`);
  await messageBox(a.page).press("Shift+Enter");
  await messageBox(a.page).pressSequentially("- one");
  await expect(messageBox(a.page)).toHaveValue(`**${text}**\n- one`);
  await messageBox(a.page).press("Enter");
  const live = messageEntries(b.page, text);
  await expect(live.locator("strong")).toHaveText(text);
  await expect(live.locator("li")).toHaveText("one");
  // The same elements, attributes and text (in whatever order attributes were set).
  const markup = () =>
    messageEntries(b.page, text).evaluate((entry) => {
      const walk = (node: Node): string => {
        if (node.nodeType === Node.TEXT_NODE) return node.textContent ?? "";
        if (node.nodeType !== Node.ELEMENT_NODE) return "";
        const el = node as Element;
        const attrs = Array.from(el.attributes)
          .map((a) => `${a.name}=${a.value}`)
          .sort()
          .join(" ");
        return `<${el.tagName} ${attrs}>${Array.from(el.childNodes).map(walk).join("")}</>`;
      };
      return walk(entry);
    });
  const before = await markup();
  await b.page.reload();
  await expect(messageEntries(b.page, text).locator("strong")).toHaveText(text);
  expect(await markup()).toBe(before);
});

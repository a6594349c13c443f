// Message text is text: markup in a message is shown literally and never runs,
// whether it arrives live over the socket or in server-rendered history.

import { expect, messageEntries, messageLog, openRoom, sendButton, messageBox, test, uniqueName } from "./fixtures";
import type { Page } from "@playwright/test";

const payload = (tag: string) => `<img src=x onerror="window.__pwned=1"> ${tag}`;

async function pwned(page: Page): Promise<unknown> {
  return page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned);
}

test("markup in a message is rendered as literal text", async ({ users }) => {
  const tag = Math.random().toString(36).slice(2, 10);
  const text = payload(tag);
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, "general", uniqueName("Mallory"));
  await openRoom(b.page, "general", uniqueName("Bob"));

  await messageBox(a.page).fill(text);
  await sendButton(a.page).click();

  // Live, on both sides.
  for (const page of [a.page, b.page]) {
    const entry = messageEntries(page, tag);
    await expect(entry).toHaveCount(1);
    await expect(entry).toContainText(text);
    await expect(messageLog(page).locator("img")).toHaveCount(0);
  }

  // From history, rendered by the server.
  const c = await users.open();
  await openRoom(c.page, "general", uniqueName("Carol"));
  await expect(messageEntries(c.page, tag)).toContainText(text);
  await expect(messageLog(c.page).locator("img")).toHaveCount(0);

  // Give a broken image's onerror a chance to fire before checking.
  await c.page.waitForTimeout(500);
  for (const page of [a.page, b.page, c.page]) {
    expect(await pwned(page)).toBeUndefined();
  }
});

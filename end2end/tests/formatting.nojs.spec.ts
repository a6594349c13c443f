// Messages are formatted as a safe subset of Markdown, the same server-rendered (with or
// without JavaScript) and live; links open apart, and hostile Markdown stays inert.

import {
  expect,
  messageEntries,
  messageLog,
  openRoom,
  seedRoom,
  test,
  uniqueName,
  uniqueRoom,
} from "./fixtures";
import type { Page } from "@playwright/test";

const REL = "noopener noreferrer nofollow ugc";

async function expectFormatted(page: Page, tag: string): Promise<void> {
  const log = messageLog(page);
  const first = messageEntries(page, `bold ${tag}`);
  await expect(first.locator("strong")).toHaveText(`bold ${tag}`);
  await expect(first.locator("em")).toHaveText("slanted");
  await expect(first.locator("code")).toHaveText("a < b");
  const link = first.getByRole("link", { name: "https://example.com/docs" });
  await expect(link).toHaveAttribute("href", "https://example.com/docs");
  await expect(link).toHaveAttribute("target", "_blank");
  await expect(link).toHaveAttribute("rel", REL);
  await expect(log.locator("blockquote")).toHaveText(`quoted ${tag}`);
  await expect(log.locator("li li")).toHaveText(["first", "second"]);
  await expect(log.locator("pre code")).toHaveText(`let x = 1; // ${tag}`);
  // Hostile links and images show their text and nothing else.
  const hostile = messageEntries(page, `hostile ${tag}`);
  await expect(hostile).toContainText(`click hostile ${tag} and pic`);
  await expect(hostile.getByRole("link")).toHaveCount(0);
  await expect(hostile.locator("img")).toHaveCount(0);
  await expect(log.locator('[href^="javascript" i], [src^="javascript" i]')).toHaveCount(0);
}

test("Markdown is rendered the same from history, with or without JavaScript", async ({ users }) => {
  const room = uniqueRoom("md");
  const tag = Math.random().toString(36).slice(2, 8);
  await seedRoom(users, room, [
    `**bold ${tag}** and *slanted* and \`a < b\`, see https://example.com/docs.`,
    `> quoted ${tag}\n\n- first\n- second`,
    "```\nlet x = 1; // " + tag + "\n```",
    `[click hostile ${tag}](javascript:window.__xss=1) and ![pic](javascript:window.__xss=2)`,
  ]);
  const v = await users.open();
  await openRoom(v.page, room, uniqueName("Vera"));
  await expectFormatted(v.page, tag);
  const ran = await v.page.evaluate(() => (window as unknown as { __xss?: unknown }).__xss);
  expect(ran).toBeUndefined();
});

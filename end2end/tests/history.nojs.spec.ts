// A room's history is readable without JavaScript: the room page is server-rendered with
// its latest 50 messages, and "Load older messages" opens the previous page
// (`/r/<room>?before=<seq>`), also server-rendered, down to "This is the beginning of #room.".
//
// The history is posted by a separate person with JavaScript on (`seedRoom`), whatever
// the project. Like every `*.nojs.spec.ts`, this also runs in the `js` project: the first
// test must give the same result there. The paging test is for the no-JS path only: with
// JavaScript the same control loads in place, which history.hydrate.spec.ts covers.

import {
  entryTexts,
  expect,
  historyStart,
  loadOlderControl,
  openRoom,
  seedRoom,
  test,
  uniqueName,
  uniqueRoom,
  type Users,
} from "./fixtures";
import type { Page } from "@playwright/test";

const SEEDED = 120;
const SEED_RE = /seed #\d{3}/;
const seedText = (i: number) => `seed #${String(i).padStart(3, "0")}`;
const seedRange = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, k) => seedText(from + k));

async function seededRoom(users: Users): Promise<string> {
  const room = uniqueRoom("nojs-hist");
  const seqs = await seedRoom(users, room, seedRange(1, SEEDED));
  expect(seqs).toEqual(Array.from({ length: SEEDED }, (_, k) => k + 1));
  return room;
}

/** The seeded entries on the page, in order (a server-rendered page is complete at load). */
async function seedEntries(page: Page): Promise<string[]> {
  return entryTexts(page, SEED_RE);
}

/** Whatever seeded entries the page shows are in ascending order, without repeats. */
async function expectAscending(page: Page): Promise<void> {
  const shown = await seedEntries(page);
  expect(shown, "entries in ascending order, once each").toEqual([...new Set(shown)].sort());
}

test("a room page shows its latest messages, server-rendered", async ({ users }) => {
  const room = await seededRoom(users);
  const v = await users.open();
  await openRoom(v.page, room, uniqueName("Vera"));

  await expect.poll(() => seedEntries(v.page)).toEqual(seedRange(71, 120));
  await expect(loadOlderControl(v.page)).toBeVisible();
  await expect(historyStart(v.page, room)).toHaveCount(0);
});

// Tagged @nojs-only: with JavaScript the control loads in place instead of navigating, which
// history.hydrate.spec.ts covers; the js project leaves this one out (playwright.config.ts).
test("Load older messages opens the older pages, back to the beginning @nojs-only", async ({ users }) => {
  const room = await seededRoom(users);
  const v = await users.open();
  await openRoom(v.page, room, uniqueName("Vera"));
  await expect.poll(() => seedEntries(v.page)).toEqual(seedRange(71, 120));

  // The previous 50: seed #021 … #070, in order; nothing older on this page.
  await loadOlderControl(v.page).click();
  await expect(v.page).toHaveURL(new RegExp(`/r/${room}\\?before=\\d+$`));
  await expect(v.page.getByRole("heading", { level: 1 })).toContainText(room);
  await expect
    .poll(async () => (await seedEntries(v.page)).filter((t) => t < seedText(71)))
    .toEqual(seedRange(21, 70));
  await expectAscending(v.page);
  await expect(loadOlderControl(v.page)).toBeVisible();
  await expect(historyStart(v.page, room)).toHaveCount(0);

  // And the first 20, with the beginning of the room.
  await loadOlderControl(v.page).click();
  await expect(v.page).toHaveURL(new RegExp(`/r/${room}\\?before=\\d+$`));
  await expect
    .poll(async () => (await seedEntries(v.page)).filter((t) => t < seedText(21)))
    .toEqual(seedRange(1, 20));
  await expectAscending(v.page);
  await expect(historyStart(v.page, room)).toBeVisible();
  await expect(loadOlderControl(v.page)).toHaveCount(0);
});

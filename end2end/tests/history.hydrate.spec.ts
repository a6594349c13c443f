// A room's history is stored on the server: it survives a reload, the page opens on the
// latest 50 messages, and older ones are paged in above without the view jumping.
//
// Paging needs 120 messages in a fresh room; they are posted over a raw WebSocket by a
// separate person (`seedRoom` in fixtures.ts), which goes through the same hub as the UI.
//
// Why the paging tests activate "Load older messages" with `dispatchEvent("click")` rather
// than `click()`: the button sits at the top of the scrolling log, and by the contract
// scrolling the log to its top loads older messages by itself. `click()` first scrolls the
// button into view, which would start a scroll-triggered load racing the click (two pages
// instead of one, or a button that is replaced mid-click). Dispatching the click leaves
// the scroll position alone, so the click path is measured on its own; the scroll path has
// its own test below.

import {
  afterTwoFrames,
  entriesInView,
  entryTexts,
  expect,
  historyStart,
  loadOlderControl,
  messageBox,
  messageEntries,
  messageLog,
  openRoom,
  scrollLogToTop,
  seedRoom,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitUntilInRoom,
  type Users,
} from "./fixtures";
import type { Page } from "@playwright/test";

/**
 * Counts the history pages `page` asks the server for (the `load_history` server function),
 * from now on.
 */
function historyRequests(page: Page): () => number {
  let count = 0;
  page.on("request", (request) => {
    if (/load_history/.test(request.url())) count++;
  });
  return () => count;
}

/** Loading a page of history can take a second or two on a small, busy machine. */
const HISTORY_TIMEOUT = 10_000;

const SEEDED = 120;
const SEED_RE = /seed #\d{3}/;
const seedText = (i: number) => `seed #${String(i).padStart(3, "0")}`;
/** `seedText(from)` … `seedText(to)`, both included. */
const seedRange = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, k) => seedText(from + k));

/** A fresh room holding `seed #001` … `seed #120`, posted in that order. */
async function seededRoom(users: Users): Promise<string> {
  const room = uniqueRoom("hist");
  const seqs = await seedRoom(users, room, seedRange(1, SEEDED));
  // A fresh room numbers its messages 1, 2, 3, … in the order they were posted.
  expect(seqs).toEqual(Array.from({ length: SEEDED }, (_, k) => k + 1));
  return room;
}

/** The seeded entries the log shows, in order, once they equal `expected`. */
async function expectSeedEntries(page: Page, expected: string[]): Promise<void> {
  await expect
    .poll(() => entryTexts(page, SEED_RE), { timeout: HISTORY_TIMEOUT })
    .toEqual(expected);
}

test("history survives a reload, each message once and in order", async ({ users }) => {
  const room = uniqueRoom("reload");
  const a = await users.open();
  await openRoom(a.page, room, uniqueName("Alice"));

  const run = Math.random().toString(36).slice(2, 8);
  const texts = [1, 2, 3].map((i) => `reload ${run} message ${i}`);
  for (const text of texts) {
    await sendMessage(a.page, text);
    // Delivered (not just shown as pending) before the next one goes out.
    await expect(messageEntries(a.page, text)).toHaveCount(1);
    await expect(messageEntries(a.page, text)).not.toContainText("Sending…");
  }
  const pattern = new RegExp(`reload ${run} message \\d`);
  await expect.poll(() => entryTexts(a.page, pattern)).toEqual(texts);

  await a.page.reload();
  await waitUntilInRoom(a.page);
  // The rejoin after the reload must not replay what the page already rendered. A message
  // sent now arrives after the rejoin's replay, so once it is shown a repeat would be too.
  const marker = uniqueText("marker");
  await sendMessage(a.page, marker);
  await expect(messageEntries(a.page, marker)).not.toContainText("Sending…");
  await expect.poll(() => entryTexts(a.page, pattern)).toEqual(texts);
  for (const text of texts) {
    await expect(messageEntries(a.page, text)).toHaveCount(1);
    await expect(messageEntries(a.page, text)).not.toContainText("Sending…");
  }
});

test("older messages load 50 at a time above the latest, keeping the view", async ({ users }) => {
  const room = await seededRoom(users);
  const b = await users.open();
  await openRoom(b.page, room, uniqueName("Bea"));

  // The latest 50, oldest first, and a way to get more.
  await expectSeedEntries(b.page, seedRange(71, 120));
  await expect(loadOlderControl(b.page)).toBeVisible();
  await expect(historyStart(b.page, room)).toHaveCount(0);

  // Whatever the page shows at the top of the log now must still be in view afterwards.
  const inView = await entriesInView(b.page);
  expect(inView.length, "some message entries are visible after opening the room").toBeGreaterThan(0);
  const anchor = inView[0].match(SEED_RE)?.[0] ?? inView[0];

  const requested = historyRequests(b.page);
  await loadOlderControl(b.page).dispatchEvent("click");
  await expectSeedEntries(b.page, seedRange(21, 120));
  await expect(messageEntries(b.page, anchor)).toBeInViewport();
  // One click is one page: nothing else is fetched by itself.
  await afterTwoFrames(b.page);
  expect(requested(), "history pages asked for").toBe(1);
  await expectSeedEntries(b.page, seedRange(21, 120));
  await expect(messageEntries(b.page, anchor)).toBeInViewport();
  await expect(loadOlderControl(b.page)).toBeVisible();
  await expect(historyStart(b.page, room)).toHaveCount(0);

  await loadOlderControl(b.page).dispatchEvent("click");
  await expectSeedEntries(b.page, seedRange(1, 120));
  await expect(historyStart(b.page, room)).toBeVisible({ timeout: HISTORY_TIMEOUT });
  await expect(loadOlderControl(b.page)).toHaveCount(0);
  await expect(messageEntries(b.page, anchor)).toBeInViewport();

  // Still live: a new message lands at the end, after all the history.
  const text = uniqueText("after paging");
  await sendMessage(b.page, text);
  await expect(messageEntries(b.page, text)).toHaveCount(1);
  await expect(messageEntries(b.page, text)).not.toContainText("Sending…");
  const all = await messageLog(b.page).getByRole("listitem").allInnerTexts();
  expect(all.findIndex((t) => t.includes(text))).toBeGreaterThan(
    all.findIndex((t) => t.includes(seedText(SEEDED))),
  );
});

test("scrolling the log to its top loads the previous page in place", async ({ users }) => {
  const room = await seededRoom(users);
  const b = await users.open();
  await openRoom(b.page, room, uniqueName("Bea"));
  await expectSeedEntries(b.page, seedRange(71, 120));
  await expect(messageBox(b.page)).toBeVisible();

  // At the top of the log the oldest entry shown (#071) is in view; after the previous
  // page arrives above it, it must still be in view, and the reader is no longer at the
  // top, so nothing more loads by itself.
  const requested = historyRequests(b.page);
  await scrollLogToTop(b.page);
  await expect(messageEntries(b.page, seedText(71))).toBeInViewport();
  await expectSeedEntries(b.page, seedRange(21, 120));
  await expect(messageEntries(b.page, seedText(71))).toBeInViewport();
  await afterTwoFrames(b.page);
  expect(requested(), "history pages asked for").toBe(1);
  await expectSeedEntries(b.page, seedRange(21, 120));
  await expect(messageEntries(b.page, seedText(71))).toBeInViewport();

  // Scrolling up once more reaches the beginning.
  await scrollLogToTop(b.page);
  await expectSeedEntries(b.page, seedRange(1, 120));
  await expect(historyStart(b.page, room)).toBeVisible({ timeout: HISTORY_TIMEOUT });
  await expect(loadOlderControl(b.page)).toHaveCount(0);
  await expect(messageEntries(b.page, seedText(21))).toBeInViewport();
});

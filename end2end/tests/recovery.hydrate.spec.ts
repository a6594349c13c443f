// A page that loses its connection catches up by itself: going offline says "Offline" and
// drops the socket; coming back reconnects at once and shows what was missed, in order and
// exactly once, without a reload. Messages typed meanwhile show "Sending…" and are delivered
// once, even across a reload (the outbox lives in localStorage).
//
// How "offline" is made:
// - `context.setOffline(true)` is the browser going offline (navigator.onLine, the
//   `offline` event). Chromium then stops traffic on a WebSocket that is already open but
//   does not close it (the server would keep it until its heartbeat timeout, 30 s). So
//   "the socket is dropped" is checked from the other side: the server drops the person
//   from the Online list (1 s grace in tests) only if the app really closed its socket.
// - A page cannot be reloaded while its context is offline. For "the outbox survives a
//   reload" the test goes offline, types a message, then comes back online with the app's
//   WebSocket refused by `context.routeWebSocket` (HTTP still works, so the page reloads;
//   every socket the page opens is closed at once, as if the server were unreachable).
//   After the reload the message must still be pending; then sockets are let through and
//   it must be delivered once. The test also checks that the pending text is in
//   localStorage, where the contract says the outbox lives.

import {
  attachText,
  connectionStatus,
  entryTexts,
  expect,
  localStorageEntries,
  messageBox,
  messageEntries,
  onlineEntries,
  openRoom,
  sendMessage,
  setWindowMarker,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitUntilInRoom,
  windowMarker,
} from "./fixtures";
import { freePort, HearthServer } from "./server";
import type { Page } from "@playwright/test";

/** "Back online reconnects at once": no backoff wait is acceptable, only set-up time. */
const RECONNECT_AT_ONCE = 5_000;

/**
 * Sends a marker from `from` and waits until `to` shows it. Frames reach a page in order
 * (replay before live, the outbox in the order typed), so once the marker is shown anything
 * sent before it, a duplicate included, has been shown too: counting after this is exact.
 */
async function afterMarker(from: Page, to: Page): Promise<void> {
  const marker = uniqueText("marker");
  await sendAll(from, [marker]);
  await expect(messageEntries(to, marker)).toHaveCount(1);
}

/** Sends `texts` from `page` through the UI and waits until each is delivered (not pending). */
async function sendAll(page: Page, texts: string[]): Promise<void> {
  for (const text of texts) {
    await sendMessage(page, text);
    await expect(messageEntries(page, text)).toHaveCount(1);
    await expect(messageEntries(page, text)).not.toContainText("Sending…");
  }
}

test("missed messages arrive after going back online, in order and once each", async ({ users }) => {
  const room = uniqueRoom("recover");
  const alice = uniqueName("Alice");
  const bob = uniqueName("Bob");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, alice);
  await openRoom(b.page, room, bob);
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);

  const run = Math.random().toString(36).slice(2, 8);
  const before = `recover ${run} before`;
  await sendAll(a.page, [before]);
  await expect(messageEntries(b.page, before)).toHaveCount(1);
  await setWindowMarker(b.page, "same page");

  await b.context.setOffline(true);
  await expect(connectionStatus(b.page)).toContainText("Offline");
  // The socket really is closed: the server lets Bob go after its grace period.
  await expect(onlineEntries(a.page, bob)).toHaveCount(0, { timeout: 5_000 });

  const missed = [1, 2, 3, 4, 5].map((i) => `recover ${run} missed ${i}`);
  await sendAll(a.page, missed);
  // Nothing reaches Bob while he is offline: the server has let his socket go (he left the
  // Online list above) and has stored all five (acknowledged to Alice).
  for (const text of missed) await expect(messageEntries(b.page, text)).toHaveCount(0);
  await expect(connectionStatus(b.page)).toContainText("Offline");

  await b.context.setOffline(false);
  await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: RECONNECT_AT_ONCE });
  await expect(onlineEntries(a.page, bob)).toHaveCount(1);

  const pattern = new RegExp(`recover ${run} (before|missed \\d)`);
  await expect.poll(() => entryTexts(b.page, pattern)).toEqual([before, ...missed]);
  await afterMarker(a.page, b.page);
  await expect.poll(() => entryTexts(b.page, pattern)).toEqual([before, ...missed]);
  for (const text of [before, ...missed]) await expect(messageEntries(b.page, text)).toHaveCount(1);
  expect(await windowMarker(b.page), "the page was not reloaded").toBe("same page");

  // And the live path works again, both ways.
  const after = uniqueText("after recovery");
  await sendAll(b.page, [after]);
  await expect(messageEntries(a.page, after)).toHaveCount(1);
  await expect(messageEntries(a.page, after)).toContainText(bob);
});

test("a message typed offline shows Sending… and is delivered once after reconnecting", async ({
  users,
}) => {
  const room = uniqueRoom("outbox");
  const alice = uniqueName("Alice");
  const bob = uniqueName("Bob");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, alice);
  await openRoom(b.page, room, bob);
  await setWindowMarker(b.page, "same page");

  await b.context.setOffline(true);
  await expect(connectionStatus(b.page)).toContainText("Offline");
  const text = uniqueText("typed offline");
  await sendMessage(b.page, text);
  const onBob = messageEntries(b.page, text);
  await expect(onBob).toHaveCount(1);
  await expect(onBob).toContainText("Sending…");
  await expect(messageBox(b.page)).toHaveValue("");
  // Not delivered while offline: Alice's own marker makes the round trip through the
  // server meanwhile, and Bob's message is not there.
  await afterMarker(a.page, a.page);
  await expect(messageEntries(a.page, text)).toHaveCount(0);
  await expect(onBob).toContainText("Sending…");

  await b.context.setOffline(false);
  await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: RECONNECT_AT_ONCE });
  await expect(onBob).not.toContainText("Sending…");
  await expect(onBob).toContainText(bob);
  await expect(messageEntries(a.page, text)).toHaveCount(1);
  await expect(messageEntries(a.page, text)).toContainText(bob);

  // Bob's outbox sends in order: a resent duplicate would reach Alice before his marker.
  await afterMarker(b.page, a.page);
  await expect(onBob).toHaveCount(1);
  await expect(messageEntries(a.page, text)).toHaveCount(1);
  expect(await windowMarker(b.page), "the page was not reloaded").toBe("same page");

  // Stored once: a fresh load shows it once, and nothing is left pending.
  await b.page.reload();
  await waitUntilInRoom(b.page);
  // Anything the reloaded page still held in its outbox would go out before the marker.
  await afterMarker(b.page, a.page);
  await expect(onBob).toHaveCount(1);
  await expect(onBob).not.toContainText("Sending…");
  await expect(messageEntries(a.page, text)).toHaveCount(1);
});

test("an unsent message survives a reload and is delivered once afterwards", async ({ users }) => {
  const room = uniqueRoom("outbox");
  const alice = uniqueName("Alice");
  const bob = uniqueName("Bob");
  const a = await users.open();
  const b = await users.open();
  await openRoom(a.page, room, alice);
  await openRoom(b.page, room, bob);

  // Bob's WebSockets are refused while `blocked` (see the header comment); the socket he
  // has open now was created before the route and is not affected.
  let blocked = true;
  let refused = 0;
  await b.context.routeWebSocket(/\/ws$/, (ws) => {
    if (blocked) {
      refused++;
      void ws.close();
    } else {
      ws.connectToServer();
    }
  });

  await b.context.setOffline(true);
  await expect(connectionStatus(b.page)).toContainText("Offline");
  const text = uniqueText("survives reload");
  await sendMessage(b.page, text);
  await expect(messageEntries(b.page, text)).toContainText("Sending…");
  const stored = Object.entries(await localStorageEntries(b.page)).filter(([, v]) => v.includes(text));
  expect(stored.length, "the unsent message is kept in localStorage").toBeGreaterThan(0);
  await attachText("outbox-localstorage.txt", JSON.stringify(stored, null, 2));

  // Online again, but the server cannot be reached: still pending.
  await b.context.setOffline(false);
  await expect.poll(() => refused, { message: "the page tried to reconnect" }).toBeGreaterThan(0);
  await expect(connectionStatus(b.page)).not.toContainText("Connected");

  await b.page.reload();
  await expect(b.page.getByRole("heading", { level: 1 })).toContainText(room);
  // Restored from storage after the reload, still waiting. (Soft, so a failure here still
  // shows whether the message is delivered once afterwards.)
  const onBob = messageEntries(b.page, text);
  await expect.soft(onBob).toHaveCount(1, { timeout: 10_000 });
  await expect.soft(onBob).toContainText("Sending…", { timeout: 1_000 });
  await expect(connectionStatus(b.page)).not.toContainText("Connected");
  await expect(messageEntries(a.page, text)).toHaveCount(0);

  // The server is reachable again: the reconnect (after its backoff) sends it, once.
  blocked = false;
  await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: 30_000 });
  await expect(onBob).not.toContainText("Sending…");
  await expect(onBob).toContainText(bob);
  await expect(messageEntries(a.page, text)).toHaveCount(1);
  await afterMarker(b.page, a.page);
  await expect(onBob).toHaveCount(1);
  await expect(messageEntries(a.page, text)).toHaveCount(1);

  // Delivered means gone from the outbox: another reload shows it once, not pending.
  const left = Object.values(await localStorageEntries(b.page)).filter((v) => v.includes(text));
  expect(left, "a delivered message is no longer in the stored outbox").toEqual([]);
  await b.page.reload();
  await waitUntilInRoom(b.page);
  await afterMarker(b.page, a.page);
  await expect(onBob).toHaveCount(1);
  await expect(onBob).not.toContainText("Sending…");
  await expect(messageEntries(a.page, text)).toHaveCount(1);
});

// The server cannot replay a gap when retention has deleted its start: a private server
// keeping only the newest 3 messages per room makes that happen on demand.
test.describe("a gap that cannot be replayed", () => {
  let server: HearthServer;

  test.beforeAll(async () => {
    server = await HearthServer.start({
      port: await freePort(),
      env: { HEARTH_RETAIN_MESSAGES: "3" },
    });
  });

  test.afterAll(async () => {
    await server?.dispose();
  });

  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus && server) {
      await attachText("hearth-retention-server.log", server.logTail());
    }
  });

  test("is announced with a Reload history button", async ({ users }) => {
    const room = uniqueRoom("gap");
    const a = await users.open({ baseURL: server.baseURL });
    const b = await users.open({ baseURL: server.baseURL });
    await openRoom(a.page, room, uniqueName("Alice"));
    await openRoom(b.page, room, uniqueName("Bob"));
    const run = Math.random().toString(36).slice(2, 8);
    const first = `gap ${run} first`;
    await sendAll(a.page, [first]);
    await expect(messageEntries(b.page, first)).toHaveCount(1);

    await b.context.setOffline(true);
    await expect(connectionStatus(b.page)).toContainText("Offline");
    // Five more: the first two of them are deleted by retention before Bob is back.
    const missed = [1, 2, 3, 4, 5].map((i) => `gap ${run} missed ${i}`);
    await sendAll(a.page, missed);
    await b.context.setOffline(false);
    await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: RECONNECT_AT_ONCE });

    const alert = b.page.getByRole("alert").filter({ hasText: "Some messages may be missing" });
    await expect(alert).toBeVisible({ timeout: 10_000 });
    const reload = alert.getByRole("button", { name: "Reload history" });
    await expect(reload).toBeVisible();

    // What the server still has is shown, in order, once each. (Whether the message Bob
    // saw before the gap stays on screen is up to the app; it must not be doubled.)
    const missedPattern = new RegExp(`gap ${run} missed \\d`);
    const kept = missed.slice(-3);
    await expect.poll(() => entryTexts(b.page, missedPattern)).toEqual(kept);
    expect(await messageEntries(b.page, first).count()).toBeLessThanOrEqual(1);

    await reload.click();
    // The notice goes away in the same update that merges the reloaded page.
    await expect(alert).toBeHidden();
    await expect.poll(() => entryTexts(b.page, missedPattern)).toEqual(kept);
    expect(await messageEntries(b.page, first).count()).toBeLessThanOrEqual(1);

    // Live delivery carries on.
    const after = uniqueText("after the gap");
    await sendAll(a.page, [after]);
    await expect(messageEntries(b.page, after)).toHaveCount(1);
  });
});

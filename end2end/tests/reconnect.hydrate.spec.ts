// When the server goes away and comes back, open pages notice, say so, and
// reconnect by themselves, without a reload; a message sent while the server
// was down is delivered exactly once afterwards.
//
// This spec kills its server, so it runs its own instance (tests/server.ts),
// not the shared one.

import {
  attachText,
  connectionStatus,
  expect,
  messageBox,
  messageEntries,
  openRoom,
  sendButton,
  test,
  uniqueName,
  uniqueText,
} from "./fixtures";
import { freePort, HearthServer } from "./server";

test.describe("reconnect", () => {
  let server: HearthServer;

  test.beforeAll(async () => {
    server = await HearthServer.start({ port: await freePort() });
  });

  test.afterAll(async () => {
    await server?.dispose();
  });

  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus && server) {
      await attachText("hearth-reconnect-server.log", server.logTail());
    }
  });

  test("pages reconnect on their own after a server restart", async ({ users }) => {
    const alice = uniqueName("Alice");
    const bob = uniqueName("Bob");
    const a = await users.open({ baseURL: server.baseURL });
    const b = await users.open({ baseURL: server.baseURL });
    await openRoom(a.page, "general", alice);
    await openRoom(b.page, "general", bob);

    const before = uniqueText("before restart");
    await messageBox(a.page).fill(before);
    await sendButton(a.page).click();
    await expect(messageEntries(b.page, before)).toBeVisible();

    // A page that reloads loses this marker.
    for (const page of [a.page, b.page]) {
      await page.evaluate(() => ((window as unknown as { __e2eMarker?: string }).__e2eMarker = "same page"));
    }

    await server.stop();
    await expect(connectionStatus(a.page)).toContainText("Reconnecting…");
    await expect(connectionStatus(b.page)).toContainText("Reconnecting…");

    // Typed and sent while the server is down.
    const offline = uniqueText("sent while offline");
    await expect(connectionStatus(a.page)).not.toContainText("Connected");
    await messageBox(a.page).fill(offline);
    await sendButton(a.page).click();

    await server.start();
    await expect(connectionStatus(a.page)).toContainText("Connected", { timeout: 20_000 });
    await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: 20_000 });

    // No reload happened.
    for (const page of [a.page, b.page]) {
      expect(await page.evaluate(() => (window as unknown as { __e2eMarker?: string }).__e2eMarker)).toBe(
        "same page",
      );
    }

    // The queued message arrives, once, on both sides.
    await expect(messageEntries(b.page, offline)).toBeVisible({ timeout: 5_000 });
    await expect(messageEntries(a.page, offline).first()).toBeVisible();
    // A marker Alice sends after it: frames arrive in order, so a duplicate of the queued
    // message (resent by her outbox, or replayed) would be shown before the marker.
    const marker = uniqueText("marker");
    await messageBox(a.page).fill(marker);
    await sendButton(a.page).click();
    await expect(messageEntries(b.page, marker)).toHaveCount(1);
    await expect(messageEntries(a.page, marker)).not.toContainText("Sending…");
    await expect(messageEntries(b.page, offline)).toHaveCount(1);
    await expect(messageEntries(a.page, offline)).toHaveCount(1);
    // What was on screen before is not shown twice (the server may or may not
    // have kept it across the restart, depending on its store).
    expect(await messageEntries(b.page, before).count()).toBeLessThanOrEqual(1);
    expect(await messageEntries(a.page, before).count()).toBeLessThanOrEqual(1);

    // And the live path works again.
    const after = uniqueText("after restart");
    await messageBox(a.page).fill(after);
    await sendButton(a.page).click();
    await expect(messageEntries(b.page, after)).toBeVisible({ timeout: 2_000 });
    await expect(messageEntries(b.page, after)).toContainText(alice);
  });

  test("a quick restart is also recovered from", async ({ users }) => {
    const a = await users.open({ baseURL: server.baseURL });
    const b = await users.open({ baseURL: server.baseURL });
    const alice = uniqueName("Alice");
    await openRoom(a.page, "general", alice);
    await openRoom(b.page, "general", uniqueName("Bob"));

    await server.restart();
    // Whether or not the pages caught the short outage, they end up connected
    // to the new process and messages flow again.
    await expect(connectionStatus(a.page)).toContainText("Connected", { timeout: 20_000 });
    await expect(connectionStatus(b.page)).toContainText("Connected", { timeout: 20_000 });
    const text = uniqueText("after quick restart");
    await messageBox(a.page).fill(text);
    await sendButton(a.page).click();
    await expect(messageEntries(b.page, text)).toBeVisible({ timeout: 5_000 });
    await expect(messageEntries(b.page, text)).toHaveCount(1);
  });
});

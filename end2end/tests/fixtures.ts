// Shared fixtures and the few steps every spec takes the way a person would:
// pick a display name, open a room, read the log, the Online list and the status.
//
// Everything is found by role and accessible name (the UI contract), never by
// CSS class or test id.

import * as fs from "node:fs";
import {
  test as base,
  expect,
  type Browser,
  type BrowserContext,
  type Locator,
  type Page,
} from "@playwright/test";

export { expect };

/** Last bytes of a server log to attach to a failed test. */
const LOG_ATTACH_CHARS = 16_000;

/**
 * Marks the moment the WASM bundle has been instantiated. Leptos's hydration
 * script calls `hydrate()` in the promise continuation right after
 * instantiation, so by the time a later task sees the flag, the page is live.
 * Without this, a click can land on the server-rendered HTML before the event
 * handlers exist, and a "no reload" test would measure a race, not the app.
 */
function markWasmReady(): void {
  const w = window as unknown as { __hearthWasmReady?: boolean };
  const wrap = <A extends unknown[], R>(f: (...args: A) => Promise<R>) =>
    function (this: unknown, ...args: A): Promise<R> {
      return f.apply(this, args).then((r) => {
        w.__hearthWasmReady = true;
        return r;
      });
    };
  if (typeof WebAssembly.instantiateStreaming === "function") {
    WebAssembly.instantiateStreaming = wrap(WebAssembly.instantiateStreaming);
  }
  WebAssembly.instantiate = wrap(
    WebAssembly.instantiate as (...args: unknown[]) => Promise<unknown>,
  ) as typeof WebAssembly.instantiate;
}

/** Whether the current project runs with JavaScript (the `js` project) or without (`nojs`). */
export function jsEnabled(): boolean {
  return base.info().project.use.javaScriptEnabled !== false;
}

/** Waits until the browser bundle is running (JS project only; a no-op without JS). */
export async function waitForHydration(page: Page): Promise<void> {
  if (!jsEnabled()) return;
  await page.waitForFunction(
    () => (window as unknown as { __hearthWasmReady?: boolean }).__hearthWasmReady === true,
    undefined,
    { timeout: 20_000 },
  );
}

/** A name that no other test (or earlier run against the same data dir) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A valid room name: 1–32 of letters, digits, `-`, `_`. */
export function uniqueRoom(prefix = "e2e"): string {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`.slice(0, 32);
}

/** A message text nobody else will have sent. */
export function uniqueText(label: string): string {
  return `${label} ${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---- locators ---------------------------------------------------------------

export const messageLog = (page: Page): Locator => page.getByRole("log", { name: "Messages" });

/** Entries of the Messages log whose text contains `text`. */
export const messageEntries = (page: Page, text: string): Locator =>
  messageLog(page).getByRole("listitem").filter({ hasText: text });

export const onlineList = (page: Page): Locator => page.getByRole("list", { name: "Online" });

/** Entries of the Online list that show `name`. */
export const onlineEntries = (page: Page, name: string): Locator =>
  onlineList(page).getByRole("listitem").filter({ hasText: name });

/** The connection status (role=status) with one of the contract's words in it. */
export const connectionStatus = (page: Page): Locator =>
  page.getByRole("status").filter({ hasText: /Connected|Connecting|Reconnecting|Offline/ });

export const messageBox = (page: Page): Locator => page.getByRole("textbox", { name: "Message" });
export const sendButton = (page: Page): Locator => page.getByRole("button", { name: "Send" });

// ---- steps ------------------------------------------------------------------

/** Fills the "Display name" form on the current page and submits it. */
export async function enterDisplayName(page: Page, name: string): Promise<void> {
  await page.getByRole("textbox", { name: "Display name" }).fill(name);
  await page.getByRole("button", { name: "Continue" }).click();
}

/** On `/`: sets the display name and waits for "You are <name>". */
export async function setNameOnHome(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await waitForHydration(page);
  await enterDisplayName(page, name);
  await expect(page.getByText(`You are ${name}`).first()).toBeVisible();
}

/** On `/`: creates a room through the form and waits to land on `/r/<room>`. */
export async function createRoom(page: Page, room: string): Promise<void> {
  await page.getByRole("textbox", { name: "Room name" }).fill(room);
  await page.getByRole("button", { name: "Create room" }).click();
  await expect(page).toHaveURL(new RegExp(`/r/${escapeRegExp(room)}$`));
  await expect(page.getByRole("heading", { level: 1 })).toContainText(room);
}

/**
 * Opens `/r/<room>` as a visitor. When the page asks for a display name, gives
 * `name`; then waits for the composer and, with JS on, for "Connected".
 */
export async function openRoom(page: Page, room: string, name: string): Promise<void> {
  await page.goto(`/r/${room}`);
  await expect(page.getByRole("heading", { level: 1 })).toContainText(room);
  await waitForHydration(page);
  const nameBox = page.getByRole("textbox", { name: "Display name" });
  if (await nameBox.isVisible()) {
    await enterDisplayName(page, name);
  }
  await waitUntilInRoom(page);
}

/** Waits for the composer and, with JS on, for the status to say "Connected". */
export async function waitUntilInRoom(page: Page): Promise<void> {
  await expect(messageBox(page)).toBeVisible();
  if (jsEnabled()) {
    await expect(connectionStatus(page)).toContainText("Connected", { timeout: 15_000 });
  }
}

/** Types `text` in the composer and clicks Send. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  await messageBox(page).fill(text);
  await sendButton(page).click();
}

// ---- fixtures ---------------------------------------------------------------

/**
 * Attaches text as a file in the test's output dir: the list reporter prints
 * the path, and the file is kept whole (inline attachments get cut short).
 */
export async function attachText(name: string, text: string): Promise<void> {
  const testInfo = base.info();
  const file = testInfo.outputPath(name);
  fs.writeFileSync(file, text);
  await testInfo.attach(name, { path: file, contentType: "text/plain" });
}

export interface Users {
  /**
   * A new browser context (a separate person with their own cookies) and one
   * page in it. `baseURL` defaults to the shared server's.
   */
  open(opts?: { baseURL?: string }): Promise<{ context: BrowserContext; page: Page }>;
}

async function newContext(
  browser: Browser,
  baseURL: string | undefined,
  javaScriptEnabled: boolean,
): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL, javaScriptEnabled });
  await context.addInitScript(markWasmReady);
  return context;
}

export const test = base.extend<{ users: Users; serverLog: void }>({
  // The default page's context also gets the hydration marker.
  context: async ({ context }, use) => {
    await context.addInitScript(markWasmReady);
    await use(context);
  },

  users: async ({ browser, baseURL, javaScriptEnabled }, use, testInfo) => {
    const contexts: BrowserContext[] = [];
    const consoleLines: string[] = [];
    await use({
      async open(opts = {}) {
        const context = await newContext(browser, opts.baseURL ?? baseURL, javaScriptEnabled);
        const person = contexts.push(context);
        context.on("page", (page) => {
          page.on("console", (msg) => consoleLines.push(`[person ${person}] ${msg.type()}: ${msg.text()}`));
          page.on("pageerror", (err) => consoleLines.push(`[person ${person}] pageerror: ${err.message}`));
        });
        const page = await context.newPage();
        return { context, page };
      },
    });
    // On failure, show what each person was looking at, and what their browser said.
    if (testInfo.status !== testInfo.expectedStatus) {
      for (const [i, context] of contexts.entries()) {
        for (const [j, page] of context.pages().entries()) {
          const snapshot = await page
            .locator("body")
            .ariaSnapshot({ timeout: 2_000 })
            .catch((e: Error) => `(no snapshot: ${e.message})`);
          await attachText(`person-${i + 1}-tab-${j + 1}.txt`, `${page.url()}\n${snapshot}\n`);
        }
      }
      if (consoleLines.length) {
        await attachText("browser-console.txt", consoleLines.join("\n") + "\n");
      }
    }
    for (const context of contexts) await context.close().catch(() => undefined);
  },

  // On failure, attach the tail of the shared server's log to the report.
  serverLog: [
    async ({}, use, testInfo) => {
      await use();
      const logFile = process.env.HEARTH_E2E_LOG;
      if (testInfo.status !== testInfo.expectedStatus && logFile && fs.existsSync(logFile)) {
        const log = fs.readFileSync(logFile, "utf8");
        await attachText("hearth-server.log", log.slice(-LOG_ATTACH_CHARS));
      }
    },
    { auto: true },
  ],
});

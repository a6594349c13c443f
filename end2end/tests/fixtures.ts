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

/**
 * Marks the current document; `expectSameDocument` then fails if a navigation since has
 * loaded a new one (the "no reload" contract of forms and links with JavaScript on).
 */
export async function setMarker(page: Page): Promise<void> {
  await page.evaluate(() => ((window as unknown as { __e2eMarker?: string }).__e2eMarker = "same document"));
}

export async function expectSameDocument(page: Page): Promise<void> {
  expect(
    await page.evaluate(() => (window as unknown as { __e2eMarker?: string }).__e2eMarker),
    "the page was reloaded",
  ).toBe("same document");
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
  page.getByRole("status").filter({ hasText: /Connected|Connecting|Reconnecting|Offline|Signed out/ });

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

/** On `/`: takes the display name `name`, creates `room` and waits until live in it. */
export async function startRoom(page: Page, name: string, room: string): Promise<void> {
  await setNameOnHome(page, name);
  await createRoom(page, room);
  await waitUntilInRoom(page);
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

/**
 * Resolves once `page` has rendered two more frames: by then the scroll and observer
 * callbacks of the layout it just made have run, and whatever they start has started.
 */
export async function afterTwoFrames(page: Page): Promise<void> {
  await page.evaluate(
    () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(null)))),
  );
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

// ---- accounts ---------------------------------------------------------------

/** A password that meets the rule (at least 8 characters). */
export const PASSWORD = "correct horse battery";

/** The header's "Account" navigation: who you are, log in / register / log out. */
export const accountNav = (page: Page): Locator => page.getByRole("navigation", { name: "Account" });

/**
 * Runs `action` (a click that logs in, registers or logs out) and waits until the home page
 * it leads to is up and hydrated. The app loads `/` in full after these actions, so this
 * waits for that document's own `load` (not the page the click happened on).
 */
async function untilHomeLoaded(page: Page, action: () => Promise<void>): Promise<void> {
  const loaded = page.waitForEvent("load", { timeout: 20_000 });
  await action();
  await loaded;
  await expect(page).toHaveURL(/\/$/);
  await waitForHydration(page);
}

/** Creates an account through `/register`; ends on `/`, signed in as `name`. */
export async function registerAccount(page: Page, name: string, password = PASSWORD): Promise<void> {
  await page.goto("/register");
  await expect(page.getByRole("heading", { name: "Create an account" })).toBeVisible();
  await waitForHydration(page);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await untilHomeLoaded(page, () => page.getByRole("button", { name: "Create account" }).click());
  await expect(accountNav(page)).toContainText(`Signed in as ${name}`);
}

/** Logs in through `/login`; ends on `/`, signed in as `name`. */
export async function logIn(page: Page, name: string, password = PASSWORD): Promise<void> {
  await page.goto("/login");
  await expect(page.getByRole("heading", { name: "Log in" })).toBeVisible();
  await waitForHydration(page);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await untilHomeLoaded(page, () => page.getByRole("button", { name: "Log in" }).click());
  await expect(accountNav(page)).toContainText(`Signed in as ${name}`);
}

/** Clicks "Log out" on the current page; ends on `/`, not signed in. */
export async function logOut(page: Page): Promise<void> {
  await untilHomeLoaded(page, () => accountNav(page).getByRole("button", { name: "Log out" }).click());
  await expect(accountNav(page)).toContainText("Not signed in");
}

/** The home page's room list entries (links) whose accessible name contains `text`. */
export const roomLinks = (page: Page, text: string | RegExp): Locator =>
  page.getByRole("link", { name: typeof text === "string" ? new RegExp(escapeRegExp(text)) : text });

// ---- history and recovery ---------------------------------------------------

/** The "Load older messages" control: a button with JS, a link or GET-form button without. */
export const loadOlderControl = (page: Page): Locator =>
  page
    .getByRole("button", { name: "Load older messages" })
    .or(page.getByRole("link", { name: "Load older messages" }));

/** "This is the beginning of #<room>.", shown once all of a room's history is loaded. */
export const historyStart = (page: Page, room: string): Locator =>
  page.getByText(`This is the beginning of #${room}.`);

/**
 * The texts of the Messages log's entries that match `pattern` (its first match in each
 * entry), in the order shown. Not auto-waiting: use it inside `expect.poll` or `toPass`.
 */
export async function entryTexts(page: Page, pattern: RegExp): Promise<string[]> {
  const texts = await messageLog(page).getByRole("listitem").allInnerTexts();
  return texts.flatMap((t) => {
    const m = t.match(pattern);
    return m ? [m[0]] : [];
  });
}

/**
 * The texts of the Messages log's entries that are wholly inside the viewport (clipped by
 * every scrolling ancestor, the way `toBeInViewport` sees them), in document order.
 */
export async function entriesInView(page: Page): Promise<string[]> {
  return messageLog(page).evaluate(async (log) => {
    const items = Array.from(log.querySelectorAll('li:not([role="separator"])')) as HTMLElement[];
    if (items.length === 0) return [];
    const ratios = new Map<Element, number>();
    await new Promise<void>((resolve) => {
      const observer = new IntersectionObserver((entries) => {
        for (const e of entries) ratios.set(e.target, e.intersectionRatio);
        if (ratios.size >= items.length) {
          observer.disconnect();
          resolve();
        }
      });
      items.forEach((item) => observer.observe(item));
    });
    return items.filter((item) => (ratios.get(item) ?? 0) >= 0.99).map((item) => item.innerText);
  });
}

/**
 * Scrolls the Messages log to its very top, as a reader dragging it up would: the nearest
 * scrolling ancestor of the log (or the page, if the log does not scroll on its own).
 */
export async function scrollLogToTop(page: Page): Promise<void> {
  await messageLog(page).evaluate((log) => {
    for (let el: HTMLElement | null = log as HTMLElement; el; el = el.parentElement) {
      const style = getComputedStyle(el);
      if (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight) {
        el.scrollTo({ top: 0, behavior: "instant" });
        return;
      }
    }
    window.scrollTo({ top: 0, behavior: "instant" });
  });
}

/** Sets a value on `window` that a reload would lose. */
export async function setWindowMarker(page: Page, value: string): Promise<void> {
  await page.evaluate((v) => ((window as unknown as { __e2eMarker?: string }).__e2eMarker = v), value);
}

export async function windowMarker(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (window as unknown as { __e2eMarker?: string }).__e2eMarker);
}

/** Every localStorage value of the page's origin, keyed by name. */
export async function localStorageEntries(page: Page): Promise<Record<string, string>> {
  return page.evaluate(() => {
    const out: Record<string, string> = {};
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (key !== null) out[key] = localStorage.getItem(key) ?? "";
    }
    return out;
  });
}

/**
 * Posts `texts` to `room`, in order, over a raw WebSocket opened from `page` (which must be
 * on the app's origin with a display name chosen, so the handshake carries the name cookie):
 * waits for `welcome`, joins, sends every text with a fresh client id and waits for one `ack`
 * each. Returns the sequence numbers, in the order of `texts`.
 *
 * Much faster than typing 100+ messages, and it goes through the same hub as the UI.
 */
export async function postRaw(
  page: Page,
  room: string,
  texts: string[],
  timeoutMs = 30_000,
): Promise<number[]> {
  return page.evaluate(
    ({ room, texts, timeoutMs }) =>
      new Promise<number[]>((resolve, reject) => {
        const scheme = location.protocol === "https:" ? "wss" : "ws";
        const ws = new WebSocket(`${scheme}://${location.host}/ws`);
        const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
        const ids = texts.map((_, i) => `e2e-${run}-${i}`);
        const seqs = new Map<string, number>();
        let done = false;
        const finish = (err?: Error) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          ws.close();
          if (err) reject(err);
          else resolve(ids.map((id) => seqs.get(id) as number));
        };
        const timer = setTimeout(
          () => finish(new Error(`only ${seqs.size} of ${texts.length} acks within ${timeoutMs} ms`)),
          timeoutMs,
        );
        ws.onmessage = (ev) => {
          const frame = JSON.parse(String(ev.data));
          switch (frame.type) {
            case "welcome":
              ws.send(JSON.stringify({ type: "join", room }));
              break;
            case "joined":
              if (frame.room !== room) break;
              texts.forEach((text, i) =>
                ws.send(JSON.stringify({ type: "send", room, client_id: ids[i], text })),
              );
              break;
            case "ack":
              if (frame.room !== room) break;
              seqs.set(frame.client_id, frame.seq);
              if (seqs.size === texts.length) finish();
              break;
            case "error":
              finish(new Error(`the server answered with an error: ${String(ev.data)}`));
              break;
            case "ping":
              ws.send(JSON.stringify({ type: "pong" }));
              break;
          }
        };
        ws.onclose = (ev) =>
          finish(new Error(`socket closed (${ev.code} ${ev.reason}) after ${seqs.size} acks`));
      }),
    { room, texts, timeoutMs },
  );
}

/**
 * Fills `room` with `texts` (in order) from a separate person with JavaScript on, whatever
 * the project: sets a display name on `/`, then posts over a raw WebSocket (`postRaw`).
 * Closes that person's context afterwards. Returns the sequence numbers.
 */
export async function seedRoom(users: Users, room: string, texts: string[]): Promise<number[]> {
  const seeder = await users.open({ javaScriptEnabled: true });
  try {
    await seeder.page.goto("/");
    await waitForHydrationAlways(seeder.page);
    await enterDisplayName(seeder.page, uniqueName("Seeder"));
    await expect(seeder.page.getByText(/You are Seeder-/).first()).toBeVisible();
    return await postRaw(seeder.page, room, texts);
  } finally {
    await seeder.context.close();
  }
}

/** Like `waitForHydration`, for a context known to run JavaScript whatever the project. */
async function waitForHydrationAlways(page: Page): Promise<void> {
  await page.waitForFunction(
    () => (window as unknown as { __hearthWasmReady?: boolean }).__hearthWasmReady === true,
    undefined,
    { timeout: 20_000 },
  );
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
  open(opts?: {
    baseURL?: string;
    /** Overrides the project's setting (a `nojs` spec can still seed history with JS). */
    javaScriptEnabled?: boolean;
    /** The person's time zone (an IANA name); the machine's by default. */
    timezoneId?: string;
  }): Promise<{ context: BrowserContext; page: Page }>;
}

async function newContext(
  browser: Browser,
  baseURL: string | undefined,
  javaScriptEnabled: boolean,
  timezoneId?: string,
): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL, javaScriptEnabled, timezoneId });
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
        const context = await newContext(
          browser,
          opts.baseURL ?? baseURL,
          opts.javaScriptEnabled ?? javaScriptEnabled,
          opts.timezoneId,
        );
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

// Message text is text: markup in a message is shown literally and never runs,
// whether it arrives live over the socket or in server-rendered history.

import {
  accountNav,
  afterTwoFrames,
  expect,
  messageBox,
  messageEntries,
  messageLog,
  onlineList,
  openRoom,
  registerAccount,
  sendButton,
  sendMessage,
  setNameOnHome,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitForHydration,
  waitUntilInRoom,
  type Users,
} from "./fixtures";
import type { BrowserContext, Page } from "@playwright/test";

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

  // No image exists to fail (checked above); two rendered frames let any handler the
  // pages did get run before the canary is read.
  for (const page of [a.page, b.page, c.page]) {
    await afterTwoFrames(page);
    expect(await pwned(page)).toBeUndefined();
  }
});

// ---- a catalogue of classic payloads ------------------------------------------
//
// Every payload below would set `window.__xss` (or call `alert`, which is hooked to set it)
// if any part of it ran: as markup, as an event handler, as a `javascript:` URL, or by
// breaking out of a string, a <script> with hydration data, a <textarea> or a template.
// Each person's pages get the canary before any of the app's own scripts run.

declare global {
  interface Window {
    __xss?: unknown;
  }
}

/** Runs in every frame of a watched context before any page script. */
function installCanary(): void {
  const w = window as Window & { __xss?: unknown };
  delete w.__xss;
  // Report to the top window too: a payload that runs inside an iframe sets its own window.
  const hit = (how: string) => {
    w.__xss ??= how;
    try {
      const top = window.top as (Window & { __xss?: unknown }) | null;
      if (top && top !== window) top.__xss ??= `${how} (in a frame)`;
    } catch {
      // a cross-origin frame cannot reach the top window
    }
  };
  w.alert = () => hit("alert");
  w.confirm = () => {
    hit("confirm");
    return false;
  };
  w.prompt = () => {
    hit("prompt");
    return null;
  };
}

/** A person whose pages carry the canary, and who records any dialog that still opens. */
async function watchedPerson(users: Users): Promise<{ context: BrowserContext; page: Page; dialogs: string[] }> {
  const { context, page } = await users.open();
  await context.addInitScript(installCanary);
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => undefined);
  });
  return { context, page, dialogs };
}

async function canary(page: Page): Promise<unknown> {
  return page.evaluate(() => (window as Window & { __xss?: unknown }).__xss);
}

/** Nothing ran on any of these pages, two frames after what they show was rendered. */
async function expectNothingRan(people: { page: Page; dialogs: string[] }[]): Promise<void> {
  for (const [i, p] of people.entries()) {
    await afterTwoFrames(p.page);
    expect(await canary(p.page), `a payload ran on person ${i + 1}'s page`).toBeUndefined();
    expect(p.dialogs, `a dialog opened on person ${i + 1}'s page`).toEqual([]);
  }
}

/** No element anywhere in the page carries an inline event handler, and no frames exist. */
async function expectNoInjectedMarkup(page: Page): Promise<void> {
  const found = await page.evaluate(() => {
    const bad: string[] = [];
    for (const el of Array.from(document.querySelectorAll("*"))) {
      for (const attr of Array.from(el.attributes)) {
        if (/^on/i.test(attr.name)) bad.push(`<${el.tagName.toLowerCase()} ${attr.name}>`);
        if (/^\s*javascript:/i.test(attr.value)) bad.push(`<${el.tagName.toLowerCase()} ${attr.name}=javascript:…>`);
      }
    }
    for (const el of Array.from(document.querySelectorAll("iframe, object, embed, frame"))) {
      bad.push(`<${el.tagName.toLowerCase()}>`);
    }
    return bad;
  });
  expect(found, "markup from a payload made it into the page").toEqual([]);
}

/** Tag names the payloads use; none of them may appear as elements inside the log. */
function tagsIn(payloads: string[]): string[] {
  const tags = new Set<string>();
  for (const p of payloads) for (const m of p.matchAll(/<\s*([a-zA-Z][a-zA-Z0-9]*)/g)) tags.add(m[1].toLowerCase());
  tags.delete("li");
  tags.delete("span");
  return [...tags];
}

const MESSAGE_PAYLOADS: string[] = [
  `<script>window.__xss=1</script>`,
  `<SCRIPT SRC=data:text/javascript,window.__xss=1></SCRIPT>`,
  `<scr<script>ipt>window.__xss=1</scr</script>ipt>`,
  `<img src=x onerror="window.__xss=1">`,
  `<IMG SRC="x" ONERROR=window.__xss=1 />`,
  `<img src=x onerror=alert(1)>`,
  `<img src=x onerror=&#119;indow.__xss=1>`,
  `<svg onload=window.__xss=1>`,
  `<svg><script>window.__xss=1</script></svg>`,
  `<svg><animate onbegin=window.__xss=1 attributeName=x dur=1s>`,
  `<body onload=window.__xss=1>`,
  `<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>`,
  `<iframe src="javascript:parent.__xss=1"></iframe>`,
  `<a href="javascript:window.__xss=1">click me</a>`,
  `<a href="jAvAsCrIpT&colon;window.__xss=1">click me too</a>`,
  `javascript:window.__xss=1`,
  `<x onclick=window.__xss=1>click</x>`,
  `<input autofocus onfocus=window.__xss=1>`,
  `<details open ontoggle=window.__xss=1>`,
  `<video><source onerror=window.__xss=1></video>`,
  `<object data="javascript:window.__xss=1"></object>`,
  `<embed src="data:text/html,<script>parent.__xss=1</script>">`,
  `<meta http-equiv="refresh" content="0;url=javascript:window.__xss=1">`,
  `<form><button formaction=javascript:window.__xss=1>go</button></form>`,
  `<marquee onstart=window.__xss=1>m</marquee>`,
  `<div style="width:expression(window.__xss=1)">old IE</div>`,
  `<style>@import 'javascript:window.__xss=1';</style>`,
  `<div style="background:url(javascript:window.__xss=1)">bg</div>`,
  `&lt;script&gt;window.__xss=1&lt;/script&gt;`,
  `&#x3C;img src=x onerror=window.__xss=1&#x3E;`,
  `&#60;svg onload=window.__xss=1&#62;`,
  `\\x3cimg src=x onerror=window.__xss=1\\x3e`,
  `\\u003cscript\\u003ewindow.__xss=1\\u003c/script\\u003e`,
  `</script><script>window.__xss=1</script>`,
  `</textarea><script>window.__xss=1</script>`,
  `</title><img src=x onerror=window.__xss=1>`,
  `<!--<img src="--><img src=x onerror=window.__xss=1//">`,
  `<noscript><p title="</noscript><img src=x onerror=window.__xss=1>">`,
  `<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>`,
  `]]><script>window.__xss=1</script>`,
  "`${window.__xss=1}`",
  `{{constructor.constructor('window.__xss=1')()}}`,
  `'-(window.__xss=1)-'`,
  `"-(window.__xss=1)-"`,
  `\\";window.__xss=1;//`,
];

/** Each payload is sent with a marker after it, so every one is told apart in the log. */
const tagged = (payload: string, i: number) => `${payload} ~${String(i).padStart(2, "0")}`;

/**
 * How a payload reads once formatted: messages are Markdown, and a pair of backticks is a
 * code span, shown without them. Everything else (tags, entities, backslashes) reads as typed.
 */
const shownAs = (text: string) => text.replace(/`([^`]+)`/g, "$1");

/** The text of each entry of the Messages log without its controls (the forms of its
 * actions and reactions): what the entry says. */
const entryTexts = (page: Page): Promise<string[]> =>
  messageLog(page)
    .getByRole("listitem")
    .evaluateAll((items) =>
      items.map((item) => {
        const copy = item.cloneNode(true) as Element;
        copy.querySelectorAll("form").forEach((form) => form.remove());
        return copy.textContent ?? "";
      }),
    );

/**
 * Every one of `texts` is in the log exactly once, literally (an entry's text, without its
 * controls, ends with it, so a delivered entry, not the pending "Sending…" copy), and no
 * payload tag became an element in the log.
 */
async function expectLiterallyInLog(page: Page, texts: string[], tags: string[]): Promise<void> {
  await expect
    .poll(
      async () => {
        const entries = await entryTexts(page);
        return texts.filter((t) => entries.filter((e) => e.endsWith(t)).length !== 1);
      },
      { message: "payloads not shown literally, exactly once, in the log", timeout: 10_000 },
    )
    .toEqual([]);
  // In what the messages say (the log's own controls, such as the reaction forms, are
  // elements by design).
  const elements = await messageLog(page).evaluate(
    (log, tags) =>
      tags.filter((t) =>
        Array.from(log.querySelectorAll(".text")).some((text) => text.getElementsByTagName(t).length > 0),
      ),
    tags,
  );
  expect(elements, "payload tags became elements in the log's messages").toEqual([]);
}

test("classic XSS payloads in messages show as text and never run", async ({ users }) => {
  expect(MESSAGE_PAYLOADS.length).toBeGreaterThanOrEqual(30);
  const room = uniqueRoom("xss");
  const tags = tagsIn(MESSAGE_PAYLOADS);
  const sender = await watchedPerson(users);
  const reader = await watchedPerson(users);
  await startRoom(sender.page, uniqueName("Mallory"), room);
  await openRoom(reader.page, room, uniqueName("Bob"));

  // Typed and sent one by one, each waited for (which also keeps within the rate limit).
  const texts = MESSAGE_PAYLOADS.map(tagged);
  const shown = texts.map(shownAs);
  for (const text of texts) {
    await sendMessage(sender.page, text);
    await expect
      .poll(async () => (await entryTexts(sender.page)).some((e) => e.endsWith(shownAs(text))), {
        message: `"${text}" was not delivered`,
      })
      .toBe(true);
  }

  // Live, on both sides.
  await expectLiterallyInLog(sender.page, shown, tags);
  await expectLiterallyInLog(reader.page, shown, tags);

  // A payload that only runs when clicked (a link, an onclick) does not run when clicked.
  for (const needle of ["click me</a>", "click me too</a>", ">click</x>", "go</button>"]) {
    await messageEntries(reader.page, needle).click();
  }
  await expect(reader.page).toHaveURL(new RegExp(`/r/${room}$`));

  // From history: rendered by the server (with the hydration data in the page), then hydrated.
  const late = await watchedPerson(users);
  await openRoom(late.page, room, uniqueName("Carol"));
  await expectLiterallyInLog(late.page, shown, tags);
  const raw = await (await late.page.request.get(`/r/${room}`)).text();
  expect(raw, "a payload's </script> reached the HTML unescaped").not.toContain("</script><script>window.__xss=1");

  await expectNothingRan([sender, reader, late]);
  for (const p of [sender, reader, late]) await expectNoInjectedMarkup(p.page);
});

// Display names are at most 32 characters: short payloads that still run if rendered as markup.
const NAME_PAYLOADS: string[] = [
  `<img src=x onerror=__xss=1>`,
  `<svg onload=__xss=1>`,
  `<script>__xss=1</script>`,
  `"><svg/onload=__xss=1>`,
  `</script><script>alert(1)//`,
  `<details open ontoggle=__xss=1>`,
  `&lt;b&gt;&#x3C;i&#x3E;`,
  "`${__xss=1}`'-alert(1)-'",
];

test("XSS payloads as guest display names show as text and never run", async ({ users }) => {
  for (const name of NAME_PAYLOADS) expect(name.length, name).toBeLessThanOrEqual(32);
  const room = uniqueRoom("xssname");
  const tags = tagsIn(NAME_PAYLOADS);

  const watcher = await watchedPerson(users);
  const watcherName = uniqueName("Watcher");
  await startRoom(watcher.page, watcherName, room);

  const guests: { page: Page; dialogs: string[] }[] = [];
  const said = new Map<string, string>();
  for (const [i, name] of NAME_PAYLOADS.entries()) {
    const guest = await watchedPerson(users);
    guests.push(guest);
    // The home page takes the name and shows it back, in the heading and the account bar.
    await setNameOnHome(guest.page, name);
    await expect(guest.page.getByRole("heading", { name: `You are ${name}`, exact: true })).toBeVisible();
    await expect(accountNav(guest.page).getByText(`${name} (guest)`, { exact: true })).toBeVisible();
    // Then the guest follows the room's link and talks in it.
    await guest.page.getByRole("link", { name: new RegExp(`^${room}\\b`) }).click();
    await expect(guest.page.getByRole("heading", { level: 1 })).toHaveText(`# ${room}`);
    await waitUntilInRoom(guest.page);
    const text = uniqueText(`hello from guest ${i}`);
    said.set(name, text);
    await sendMessage(guest.page, text);
    await expect(messageEntries(watcher.page, text)).toHaveCount(1);
  }

  // Live on the watcher's page, and server-rendered for someone who comes later.
  const late = await watchedPerson(users);
  await openRoom(late.page, room, uniqueName("Late"));
  for (const page of [watcher.page, late.page]) {
    await expect
      .poll(async () => {
        const online = await onlineList(page).getByRole("listitem").allTextContents();
        // Guests are listed marked as such: "<name> (guest)".
        return NAME_PAYLOADS.filter((n) => online.filter((o) => o.trim() === `${n} (guest)`).length !== 1);
      }, { message: "names not listed literally, once each, under Online" })
      .toEqual([]);
    for (const [name, text] of said) {
      const entry = messageEntries(page, text);
      await expect(entry).toHaveCount(1);
      expect(((await entry.textContent()) ?? "").startsWith(name), `author of "${text}" is not "${name}"`).toBe(true);
    }
    const elements = await page.evaluate(
      (tags) => tags.filter((t) => document.querySelector("main")!.getElementsByTagName(t).length > 0),
      tags,
    );
    expect(elements, "name tags became elements in the page").toEqual([]);
  }

  await expectNothingRan([watcher, late, ...guests]);
  for (const p of [watcher, late, ...guests]) await expectNoInjectedMarkup(p.page);
});

const ROOM_RULE = "Room names are 1–32 letters, digits, - or _ (no spaces).";

test("XSS payloads as room names are refused with the rule and never run", async ({ users }) => {
  const person = await watchedPerson(users);
  await person.page.goto("/");
  await waitForHydration(person.page);
  const rooms = person.page.getByRole("region", { name: "Rooms" });
  await expect(rooms.getByRole("link", { name: /^general\b/ })).toBeVisible();
  for (const payload of [
    `<script>__xss=1</script>`,
    `<img src=x onerror=__xss=1>`,
    `"><svg onload=__xss=1>`,
    `javascript:__xss=1`,
    `x'-alert(1)-'`,
  ]) {
    await person.page.getByRole("textbox", { name: "Room name" }).fill(payload);
    await person.page.getByRole("button", { name: "Create room" }).click();
    await expect(person.page.getByRole("alert").filter({ hasText: ROOM_RULE })).toHaveText(ROOM_RULE);
    await expect(person.page).toHaveURL(/\/$/);
    await expect(rooms.getByRole("link", { name: payload })).toHaveCount(0);
  }
  await expectNothingRan([person]);
  await expectNoInjectedMarkup(person.page);
});

test("a payload in a room address or a user name is repeated back as text", async ({ users }) => {
  const person = await watchedPerson(users);
  await registerAccount(person.page, uniqueName("Rita"));

  // A made-up room address: "Room not found", quoting what was asked for.
  const inUrl = `<img src=x onerror=__xss=1>`;
  await person.page.goto(`/r/${encodeURIComponent(inUrl)}`);
  await expect(person.page.getByRole("heading", { level: 1 })).toHaveText("Room not found");
  await expect(person.page.getByRole("alert")).toContainText(`There is no room called "${inUrl}"`);
  await waitForHydration(person.page);

  // "Message a person" with a name nobody has: the error names it, as text.
  const who = `<svg onload=__xss=1>${Math.random().toString(36).slice(2, 6)}`;
  await person.page.goto("/");
  await waitForHydration(person.page);
  await person.page.getByRole("textbox", { name: "Message a person" }).fill(who);
  await person.page.getByRole("button", { name: "Open conversation" }).click();
  await expect(person.page.getByRole("alert").filter({ hasText: "There is no account called" })).toContainText(who);
  await expect(person.page).toHaveURL(/\/$/);

  // Inviting such a name to a private room: same.
  const room = uniqueRoom("xssinvite");
  await person.page.getByRole("textbox", { name: "Room name" }).fill(room);
  await person.page.getByRole("checkbox", { name: "Private (members only)" }).check();
  await person.page.getByRole("button", { name: "Create room" }).click();
  await expect(person.page.getByRole("heading", { level: 1 })).toHaveText(`# ${room} (private)`);
  await waitUntilInRoom(person.page);
  await person.page.getByRole("textbox", { name: "Invite by user name" }).fill(who);
  await person.page.getByRole("button", { name: "Invite" }).click();
  await expect(person.page.getByRole("alert").filter({ hasText: "There is no account called" })).toContainText(who);

  await expectNothingRan([person]);
  await expectNoInjectedMarkup(person.page);
});

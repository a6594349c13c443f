// While the tab is hidden: messages from others count in the title, and a direct message
// raises a desktop notification once the person has enabled them, as does a message that
// mentions them.
//
// The browser's Notification API and the tab's visibility are replaced in the page (before
// any script) by stand-ins that record what Hearth does with them: headless Chromium has no
// desktop to show a notification on and never hides a tab.

import {
  expect,
  openRoom,
  registerAccount,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitUntilInRoom,
} from "./fixtures";
import type { Page } from "@playwright/test";

interface Recorded {
  title: string;
  body: string;
  closed: boolean;
}

function standIns(): void {
  const w = window as unknown as Record<string, unknown>;
  const shown: Recorded[] = [];
  const notes: unknown[] = [];
  w.__shown = shown;
  w.__notes = notes;
  w.__hidden = false;
  class StandIn {
    static permission = "default";
    static async requestPermission(): Promise<string> {
      StandIn.permission = "granted";
      return "granted";
    }
    onclick: (() => void) | null = null;
    record: Recorded;
    constructor(title: string, options: { body?: string } = {}) {
      this.record = { title, body: options.body ?? "", closed: false };
      shown.push(this.record);
      notes.push(this);
    }
    close(): void {
      this.record.closed = true;
    }
  }
  w.Notification = StandIn;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => w.__hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (w.__hidden ? "hidden" : "visible"),
  });
}

async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((h) => {
    (window as unknown as { __hidden: boolean }).__hidden = h;
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

const shown = (page: Page) => page.evaluate(() => (window as unknown as { __shown: Recorded[] }).__shown);

test("a direct message to a hidden tab counts in the title and raises a notification", async ({ users }) => {
  const [anna, ben] = [uniqueName("Anna"), uniqueName("Ben")];
  const a = await users.open();
  const b = await users.open();
  await b.context.addInitScript(standIns);
  await registerAccount(a.page, anna);
  await registerAccount(b.page, ben);

  await a.page.getByRole("textbox", { name: "Message a person" }).fill(ben);
  await a.page.getByRole("button", { name: "Open conversation" }).click();
  await expect(a.page).toHaveURL(/\/r\/dm-\d+-\d+$/);
  await waitUntilInRoom(a.page);
  await b.page.goto(new URL(a.page.url()).pathname);
  await waitUntilInRoom(b.page);

  await b.page.getByRole("button", { name: "Enable notifications" }).click();
  await expect(b.page.getByRole("button", { name: "Enable notifications" })).toHaveCount(0);
  await expect(b.page).toHaveTitle("Hearth");

  // Visible: nothing is raised.
  const seen = uniqueText("seen at once");
  await sendMessage(a.page, seen);
  await expect(b.page.getByRole("log", { name: "Messages" })).toContainText(seen);
  expect(await shown(b.page)).toEqual([]);

  await setHidden(b.page, true);
  const first = uniqueText("are you there");
  await sendMessage(a.page, first);
  await expect(b.page).toHaveTitle("(1) Hearth");
  await expect.poll(() => shown(b.page)).toEqual([{ title: anna, body: first, closed: false }]);
  const second = uniqueText("hello?");
  await sendMessage(a.page, second);
  await expect(b.page).toHaveTitle("(2) Hearth");

  // Clicking the notification brings the conversation's tab forward and closes it.
  await b.page.evaluate(() => (window as unknown as { __notes: { onclick: () => void }[] }).__notes[0].onclick());
  await expect.poll(async () => (await shown(b.page))[0].closed).toBe(true);

  // Shown again: the count is read.
  await setHidden(b.page, false);
  await expect(b.page).toHaveTitle("Hearth");
  // The sender's own tab never counted its own messages.
  await expect(a.page).toHaveTitle("Hearth");
});

test("a message that mentions someone raises a notification in their hidden tab", async ({ users }) => {
  const room = uniqueRoom("notify");
  const [ada, bob] = [uniqueName("Ada"), uniqueName("Bob")];
  const a = await users.open();
  const b = await users.open();
  await a.context.addInitScript(standIns);
  await openRoom(a.page, room, ada);
  await openRoom(b.page, room, bob);
  await a.page.getByRole("button", { name: "Enable notifications" }).click();
  await expect(a.page.getByRole("button", { name: "Enable notifications" })).toHaveCount(0);

  await setHidden(a.page, true);
  const plain = uniqueText("for everyone");
  await sendMessage(b.page, plain);
  await expect(a.page).toHaveTitle("(1) Hearth");
  const called = uniqueText(`@${ada} over to you`);
  await sendMessage(b.page, called);
  await expect(a.page).toHaveTitle("(2) Hearth");
  // Only the mention raised one.
  await expect.poll(() => shown(a.page)).toEqual([{ title: bob, body: called, closed: false }]);
});

// Accounts and what they may open: registering, logging in and out, private rooms that
// only their members can read, direct messages between two people, and guest names that
// cannot impersonate an account.
//
// Every person is a separate browser context; every name is fresh, so tests do not see
// each other's rooms or accounts.

import {
  PASSWORD,
  accountNav,
  connectionStatus,
  enterDisplayName,
  escapeRegExp,
  expect,
  logIn,
  logOut,
  messageEntries,
  registerAccount,
  roomLinks,
  sendMessage,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
  waitForHydration,
  waitUntilInRoom,
} from "./fixtures";
import type { Locator, Page } from "@playwright/test";

const NO_MATCH = "That user name and password do not match; check both and try again.";
const NAME_TAKEN =
  "That name belongs to a registered account, or looks the same as one; log in, or choose another name.";

/** The home page's room list has loaded: the default room is always in it. */
async function homeListLoaded(page: Page): Promise<void> {
  await expect(page).toHaveURL(/\/$/);
  await expect(roomLinks(page, /^general\b/)).toBeVisible();
}

/** The page says "Room not found" and gives the contract's explanation. */
async function expectRoomNotFound(page: Page): Promise<void> {
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Room not found");
  await expect(page.getByRole("alert").filter({ hasText: /^There is no room called/ })).toBeVisible();
  await expect(page.getByRole("log", { name: "Messages" })).toHaveCount(0);
  await expect(page.getByRole("textbox", { name: "Message" })).toHaveCount(0);
}

/**
 * `secret` appears nowhere in what the browser got for this page: not in the visible
 * page, not in the HTML (hydration data included), and not in the raw response to a
 * fresh GET with the same cookies.
 */
async function expectNowhere(page: Page, secret: string): Promise<void> {
  await expect(page.locator("body")).not.toContainText(secret);
  expect(await page.content(), "the secret is in the page's HTML").not.toContain(secret);
  const res = await page.request.get(page.url());
  expect(await res.text(), "the secret is in the server's response").not.toContain(secret);
}

/** A message in the log, delivered (not the pending "Sending…" copy), by `author`. */
function delivered(page: Page, text: string, author: string): Locator {
  return messageEntries(page, text).filter({ hasText: author }).filter({ hasNotText: "Sending…" });
}

/** Opens a live socket from `page` and tries to join `room`; returns the frames it got. */
async function tryJoinOverSocket(page: Page, room: string): Promise<{ type: string; code?: string; text?: string }[]> {
  return page.evaluate(
    (room) =>
      new Promise<{ type: string; code?: string; text?: string }[]>((resolve) => {
        const frames: { type: string; code?: string; text?: string }[] = [];
        const ws = new WebSocket(`ws://${location.host}/ws`);
        const done = () => {
          ws.close();
          resolve(frames);
        };
        setTimeout(done, 3_000);
        ws.onmessage = (ev) => {
          const frame = JSON.parse(String(ev.data));
          frames.push({ type: frame.type, code: frame.code, text: frame.text });
          if (frame.type === "welcome") ws.send(JSON.stringify({ type: "join", room }));
          if (frame.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
          // Give a (wrongly) admitted join a moment to replay history before closing.
          if (frame.type === "error" || frame.type === "joined") setTimeout(done, 500);
        };
        ws.onclose = () => resolve(frames);
      }),
    room,
  );
}

test("register, log out, log in again; a wrong password is refused", async ({ users }) => {
  const name = uniqueName("Ada");
  const { page } = await users.open();

  await registerAccount(page, name);
  const nav = accountNav(page);
  await expect(nav).toContainText(`Signed in as ${name}`);
  await expect(nav.getByRole("button", { name: "Log out" })).toBeVisible();
  await expect(nav.getByRole("link", { name: "Log in" })).toHaveCount(0);
  await expect(nav.getByRole("link", { name: "Register" })).toHaveCount(0);
  // A registered user chats under the account name: no guest name form.
  await expect(page.getByRole("textbox", { name: "Display name" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Continue" })).toHaveCount(0);

  // The login is in a cookie: it survives a reload.
  await page.reload();
  await expect(accountNav(page)).toContainText(`Signed in as ${name}`);

  await logOut(page);
  await expect(nav.getByRole("link", { name: "Log in" })).toBeVisible();
  await expect(nav.getByRole("link", { name: "Register" })).toBeVisible();
  await expect(nav.getByRole("button", { name: "Log out" })).toHaveCount(0);
  // Logged out for good, not just on this rendering.
  await page.reload();
  await expect(accountNav(page)).toContainText("Not signed in");

  // Wrong password: an alert with the contract's sentence, and no session.
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(`${PASSWORD}-wrong`);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText(NO_MATCH);
  await expect(page).toHaveURL(/\/login$/);
  await page.goto("/");
  await expect(accountNav(page)).toContainText("Not signed in");

  // An unknown user name gets the very same answer (it does not reveal which names exist).
  await page.goto("/login");
  await waitForHydration(page);
  await page.getByLabel("User name").fill(uniqueName("Nobody"));
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText(NO_MATCH);

  await logIn(page, name);
  await expect(accountNav(page).getByRole("button", { name: "Log out" })).toBeVisible();
});

test("a private room is invisible to others until its owner invites them", async ({ users }) => {
  const ownerName = uniqueName("Olga");
  const otherName = uniqueName("Pete");
  const room = uniqueRoom("priv");
  const secret = uniqueText("the secret plan");

  const owner = await users.open();
  await registerAccount(owner.page, ownerName);
  await owner.page.getByRole("textbox", { name: "Room name" }).fill(room);
  await owner.page.getByRole("checkbox", { name: "Private (members only)" }).check();
  await owner.page.getByRole("button", { name: "Create room" }).click();
  await expect(owner.page).toHaveURL(new RegExp(`/r/${escapeRegExp(room)}$`));
  await expect(owner.page.getByRole("heading", { level: 1 })).toHaveText(`# ${room} (private)`);
  await waitUntilInRoom(owner.page);
  const members = owner.page.getByRole("list", { name: "Members" });
  await expect(members.getByRole("listitem")).toHaveText([ownerName]);
  await sendMessage(owner.page, secret);
  await expect(delivered(owner.page, secret, ownerName)).toHaveCount(1);

  // Someone else with an account: the room does not exist for them.
  const other = await users.open();
  await registerAccount(other.page, otherName);
  await homeListLoaded(other.page);
  await expect(roomLinks(other.page, room)).toHaveCount(0);
  await other.page.goto(`/r/${room}`);
  await expectRoomNotFound(other.page);
  await expectNowhere(other.page, secret);
  // Nor can they join it over the live connection.
  const frames = await tryJoinOverSocket(other.page, room);
  expect(frames.map((f) => f.type)).toContain("error");
  expect(frames.find((f) => f.type === "error")?.code).toBe("forbidden");
  expect(frames.map((f) => f.type)).not.toContain("joined");
  expect(JSON.stringify(frames)).not.toContain(secret);

  // A guest cannot see it either.
  const guest = await users.open();
  await guest.page.goto(`/r/${room}`);
  await expectRoomNotFound(guest.page);
  await expectNowhere(guest.page, secret);

  // The owner invites the other person by user name.
  await owner.page.getByRole("textbox", { name: "Invite by user name" }).fill(otherName);
  await owner.page.getByRole("button", { name: "Invite" }).click();
  await expect(owner.page.getByText(`${otherName} can now open this room.`)).toBeVisible();
  await expect(members.getByRole("listitem").filter({ hasText: otherName })).toHaveCount(1);

  // Now it is theirs too: listed (as private) on their home page, and readable.
  await other.page.goto("/");
  await homeListLoaded(other.page);
  const link = roomLinks(other.page, room);
  await expect(link).toHaveCount(1);
  await expect(link).toContainText("private");
  await link.click();
  await expect(other.page).toHaveURL(new RegExp(`/r/${escapeRegExp(room)}$`));
  await expect(other.page.getByRole("heading", { level: 1 })).toHaveText(`# ${room} (private)`);
  await waitUntilInRoom(other.page);
  await expect(delivered(other.page, secret, ownerName)).toHaveCount(1);

  // And they can talk in it, live.
  const answer = uniqueText("count me in");
  await sendMessage(other.page, answer);
  await expect(delivered(owner.page, answer, otherName)).toHaveCount(1);

  // The guest still cannot.
  await guest.page.reload();
  await expectRoomNotFound(guest.page);
  await expectNowhere(guest.page, secret);
});

test("logging out ends the session's live connections in its other tabs", async ({ users }) => {
  const aName = uniqueName("Alma");
  const bName = uniqueName("Bert");
  const room = uniqueRoom("logout");

  const a = await users.open();
  await registerAccount(a.page, aName);
  await a.page.getByRole("textbox", { name: "Room name" }).fill(room);
  await a.page.getByRole("checkbox", { name: "Private (members only)" }).check();
  await a.page.getByRole("button", { name: "Create room" }).click();
  await expect(a.page.getByRole("heading", { level: 1 })).toHaveText(`# ${room} (private)`);
  await waitUntilInRoom(a.page);
  const b = await users.open();
  await registerAccount(b.page, bName);
  await a.page.getByRole("textbox", { name: "Invite by user name" }).fill(bName);
  await a.page.getByRole("button", { name: "Invite" }).click();
  await expect(a.page.getByText(`${bName} can now open this room.`)).toBeVisible();
  await b.page.goto(`/r/${room}`);
  await waitUntilInRoom(b.page);

  // A logs out in a second tab; the room tab is told it is signed out (and stops retrying).
  const tab2 = await a.context.newPage();
  await tab2.goto("/");
  await waitForHydration(tab2);
  await logOut(tab2);
  await expect(connectionStatus(a.page)).toContainText("Signed out", { timeout: 10_000 });

  // What B says now does not reach A's stale tab, and what that tab tries to send is not
  // delivered as A.
  const secret = uniqueText("said after the logout");
  await sendMessage(b.page, secret);
  await expect(delivered(b.page, secret, bName)).toHaveCount(1);
  const stale = uniqueText("sent from the stale tab");
  await sendMessage(a.page, stale);
  // The stale tab's socket was closed at the logout; a marker from Bob, delivered after the
  // stale tab's send, shows the room has moved on without it.
  const marker = uniqueText("marker");
  await sendMessage(b.page, marker);
  await expect(delivered(b.page, marker, bName)).toHaveCount(1);
  await expect(messageEntries(a.page, secret)).toHaveCount(0);
  await expect(messageEntries(b.page, stale)).toHaveCount(0);

  // Reloaded, the tab is logged out and the private room is gone for it.
  await a.page.reload();
  await expectRoomNotFound(a.page);
  await expectNowhere(a.page, secret);
});

test("a direct message is between its two people only", async ({ users }) => {
  const aName = uniqueName("Anna");
  const bName = uniqueName("Ben");
  const cName = uniqueName("Cleo");
  const hello = uniqueText("just between us");

  const a = await users.open();
  const b = await users.open();
  const c = await users.open();
  await registerAccount(a.page, aName);
  await registerAccount(b.page, bName);
  await registerAccount(c.page, cName);

  // A starts the conversation from the home page.
  await a.page.getByRole("textbox", { name: "Message a person" }).fill(bName);
  await a.page.getByRole("button", { name: "Open conversation" }).click();
  await expect(a.page).toHaveURL(/\/r\/dm-\d+-\d+$/);
  const dmPath = new URL(a.page.url()).pathname;
  await expect(a.page.getByRole("heading", { level: 1 })).toHaveText(`@ ${bName}`);
  await waitUntilInRoom(a.page);
  await expect(a.page.getByRole("list", { name: "Members" }).getByRole("listitem")).toHaveText(
    [aName, bName].sort(),
  );
  // A conversation has exactly two people: nobody can be invited.
  await expect(a.page.getByRole("textbox", { name: "Invite by user name" })).toHaveCount(0);
  await sendMessage(a.page, hello);
  await expect(delivered(a.page, hello, aName)).toHaveCount(1);

  // B finds it in their list, titled with A's name, and reads it.
  await b.page.goto("/");
  await homeListLoaded(b.page);
  const dmLink = b.page.getByRole("link", { name: new RegExp(`^${escapeRegExp(aName)}\\b`) });
  await expect(dmLink).toHaveCount(1);
  await expect(dmLink).toContainText("direct message");
  await dmLink.click();
  await expect(b.page).toHaveURL(new RegExp(`${escapeRegExp(dmPath)}$`));
  await expect(b.page.getByRole("heading", { level: 1 })).toHaveText(`@ ${aName}`);
  await waitUntilInRoom(b.page);
  await expect(delivered(b.page, hello, aName)).toHaveCount(1);

  // B replies; A sees it live.
  const reply = uniqueText("sure thing");
  await sendMessage(b.page, reply);
  await expect(delivered(a.page, reply, bName)).toHaveCount(1);

  // Opening the conversation again from A's side lands in the same room.
  await a.page.goto("/");
  await homeListLoaded(a.page);
  await a.page.getByRole("textbox", { name: "Message a person" }).fill(bName);
  await a.page.getByRole("button", { name: "Open conversation" }).click();
  await expect(a.page).toHaveURL(new RegExp(`${escapeRegExp(dmPath)}$`));
  await waitUntilInRoom(a.page);
  await expect(delivered(a.page, reply, bName)).toHaveCount(1);

  // C, a third account, cannot open it and does not have it in their list.
  await c.page.goto("/");
  await homeListLoaded(c.page);
  await expect(c.page.getByRole("link", { name: /direct message/ })).toHaveCount(0);
  await expect(c.page.locator(`a[href="${dmPath}"]`)).toHaveCount(0);
  await c.page.goto(dmPath);
  await expectRoomNotFound(c.page);
  await expectNowhere(c.page, hello);
  await expectNowhere(c.page, reply);
  const frames = await tryJoinOverSocket(c.page, dmPath.replace("/r/", ""));
  expect(frames.find((f) => f.type === "error")?.code).toBe("forbidden");
  expect(JSON.stringify(frames)).not.toContain(hello);
});

test("a guest cannot take a registered name", async ({ users }) => {
  const name = uniqueName("Reg");
  const owner = await users.open();
  await registerAccount(owner.page, name);

  const guest = await users.open();
  await guest.page.goto("/");
  await waitForHydration(guest.page);
  await expect(accountNav(guest.page)).toContainText("Not signed in");

  // The exact name, and the same name in other letter case: both belong to the account.
  for (const attempt of [name, name.toUpperCase()]) {
    await enterDisplayName(guest.page, attempt);
    await expect(guest.page.getByRole("alert")).toHaveText(NAME_TAKEN);
    await expect(guest.page.getByRole("heading", { name: "Choose a display name" })).toBeVisible();
  }
  await guest.page.reload();
  await expect(accountNav(guest.page)).toContainText("Not signed in");
  await expect(accountNav(guest.page)).not.toContainText(name);

  // Nor from a room page's name form.
  const room = uniqueRoom("guestname");
  await guest.page.goto(`/r/${room}`);
  await waitForHydration(guest.page);
  await enterDisplayName(guest.page, name);
  await expect(guest.page.getByRole("alert").filter({ hasText: NAME_TAKEN })).toBeVisible();
  await expect(guest.page.getByRole("textbox", { name: "Message" })).toHaveCount(0);

  // Another name works, and the guest is shown as a guest.
  const guestName = uniqueName("Visitor");
  await guest.page.goto("/");
  await waitForHydration(guest.page);
  await enterDisplayName(guest.page, guestName);
  await expect(guest.page.getByRole("heading", { name: `You are ${guestName}` })).toBeVisible();
  await guest.page.reload();
  await expect(accountNav(guest.page)).toContainText(`${guestName} (guest)`);
  await expect(accountNav(guest.page).getByRole("button", { name: "Log out" })).toBeVisible();
  // Guests get no private rooms and no direct messages.
  await expect(guest.page.getByRole("checkbox", { name: "Private (members only)" })).toHaveCount(0);
  await expect(guest.page.getByRole("textbox", { name: "Message a person" })).toHaveCount(0);
});

// With JavaScript on, the name and room forms update the page in place: the
// document is never reloaded (a marker on `window` survives).

import {
  createRoom,
  enterDisplayName,
  expect,
  expectSameDocument,
  setMarker,
  test,
  uniqueName,
  uniqueRoom,
  waitForHydration,
  waitUntilInRoom,
} from "./fixtures";

test("the name and room forms work without reloading the page", async ({ page }) => {
  let documentLoads = 0;
  page.on("load", () => documentLoads++);

  await page.goto("/");
  await waitForHydration(page);
  const loadsAfterGoto = documentLoads;
  await setMarker(page);

  const name = uniqueName("Hana");
  await enterDisplayName(page, name);
  await expect(page.getByText(`You are ${name}`).first()).toBeVisible();
  await expectSameDocument(page);

  const room = uniqueRoom("hydrate");
  await createRoom(page, room);
  await waitUntilInRoom(page);
  await expectSameDocument(page);
  expect(documentLoads, "a new document was loaded").toBe(loadsAfterGoto);
});

test("an invalid room name is refused in place", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  await setMarker(page);
  await page.getByRole("textbox", { name: "Room name" }).fill("bad name!");
  await page.getByRole("button", { name: "Create room" }).click();
  await expect(page.getByRole("alert").filter({ hasText: /\w/ })).toBeVisible();
  await expect(page).not.toHaveURL(/\/r\//);
  await expectSameDocument(page);
});

// Two Hearth nodes on one PostgreSQL database and one nats-server: two people, each
// connected to a different node, chat live in one room and see each other online.

import {
  expect,
  messageEntries,
  onlineEntries,
  openRoom,
  sendMessage,
  startRoom,
  test,
  uniqueName,
  uniqueRoom,
  uniqueText,
} from "./fixtures";
import { freePort, freshDatabase, HearthServer, startNats } from "./server";

test("two people on two nodes chat live and see each other online", async ({ users }) => {
  const database = await freshDatabase();
  const nats = await startNats();
  const env = {
    HEARTH_DATABASE_URL: database,
    HEARTH_NATS_URL: nats.url,
    HEARTH_CATCH_UP_MS: "300",
  };
  const nodes: HearthServer[] = [];
  try {
    nodes.push(await HearthServer.start({ port: await freePort(), env }));
    nodes.push(await HearthServer.start({ port: await freePort(), env }));
    const [a, b] = nodes;
    const alice = uniqueName("Alice");
    const bob = uniqueName("Bob");
    const room = uniqueRoom("cluster");

    const onA = await users.open({ baseURL: a.baseURL });
    await startRoom(onA.page, alice, room);
    const onB = await users.open({ baseURL: b.baseURL });
    await openRoom(onB.page, room, bob);
    await expect(onlineEntries(onA.page, bob)).toHaveCount(1);
    await expect(onlineEntries(onB.page, alice)).toHaveCount(1);

    const hello = uniqueText("hello from A");
    await sendMessage(onA.page, hello);
    await expect(messageEntries(onB.page, hello)).toHaveCount(1);
    const reply = uniqueText("reply from B");
    await sendMessage(onB.page, reply);
    await expect(messageEntries(onA.page, reply)).toHaveCount(1);
    await expect(messageEntries(onB.page, hello)).toHaveCount(1);

    // Bob closes his tab on B: Alice, on A, sees him go once the grace period ends.
    await onB.page.close();
    await expect(onlineEntries(onA.page, bob)).toHaveCount(0, { timeout: 10_000 });
    await expect(onlineEntries(onA.page, alice)).toHaveCount(1);
  } finally {
    for (const node of nodes) await node.dispose();
    nats.stop();
  }
});

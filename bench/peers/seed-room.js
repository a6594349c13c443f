// Fills a Hearth room with N messages over Hearth's own WebSocket protocol (docs/protocol.md),
// so bench/run.sh can load-test the server-rendered room page.
// Usage: node seed-room.js <port> <room> <count> <cookie>   (loopback only; exits 0 once every
// send is acked). <cookie> is a `hearth_session=…` pair from POST /api/set_name.
"use strict";
const WebSocket = require("ws");

const [port, room = "bench", count = "50", cookie = ""] = process.argv.slice(2);
const total = Number(count);
if (!port || !Number.isInteger(total) || total < 1) {
  console.error("usage: node seed-room.js <port> <room> <count>");
  process.exit(2);
}
const fail = (why) => {
  console.error(`seed-room: ${why}`);
  process.exit(1);
};
setTimeout(() => fail(`timed out (${acked}/${total} acked)`), 20000).unref();

let acked = 0;
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
  headers: { Cookie: cookie },
  perMessageDeflate: false,
});
ws.on("unexpected-response", (_req, res) => fail(`upgrade refused: HTTP ${res.statusCode}`));
ws.on("error", (e) => fail(e.message));
ws.on("close", (code) => acked < total && fail(`closed with ${code} (${acked}/${total} acked)`));
ws.on("message", (data) => {
  const f = JSON.parse(data.toString());
  if (f.type === "welcome") {
    ws.send(JSON.stringify({ type: "join", room }));
  } else if (f.type === "joined") {
    for (let i = 1; i <= total; i++) {
      const text = `Benchmark message ${i}: the quick brown fox jumps over the lazy dog.`;
      ws.send(JSON.stringify({ type: "send", room, client_id: `seed-${i}`, text }));
    }
  } else if (f.type === "ping") {
    ws.send(JSON.stringify({ type: "pong" }));
  } else if (f.type === "ack") {
    if (++acked === total) {
      console.log(`seed-room: ${total} messages stored in #${room}`);
      ws.close(1000);
      process.exit(0);
    }
  } else if (f.type === "error") {
    fail(`server error ${f.code}: ${f.message}`);
  }
});

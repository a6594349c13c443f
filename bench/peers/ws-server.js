// Peer 1: the smallest useful Node `ws` broadcast server.
// Every text frame a client sends goes to every open client, the sender included.
// Port: first argument, else $PORT, else 3101. Loopback only. No compression (Hearth has none).
"use strict";
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2] || process.env.PORT || 3101);
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

wss.on("connection", (ws) => {
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    }
  });
});
wss.on("listening", () => console.log(`ws peer listening on ws://127.0.0.1:${port}`));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));

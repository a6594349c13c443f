// Peer 2: the minimal Socket.IO chat server: every "chat" event is emitted to everyone.
// Port: first argument, else $PORT, else 3102. Loopback only. No compression (Hearth has none).
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || process.env.PORT || 3102);
const http = createServer();
const io = new Server(http, {
  transports: ["websocket", "polling"],
  perMessageDeflate: false,
  httpCompression: false,
});

io.on("connection", (s) => s.on("chat", (m) => io.emit("chat", m)));
http.listen(port, "127.0.0.1", () =>
  console.log(`socket.io peer listening on http://127.0.0.1:${port}/socket.io/`),
);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));

// The Node.js reference: socket.io 4 doing the same broadcast to one room.
// GET /broadcast?count=N&pad=B emits N events of ~B bytes to room "agents"; every client joins it.
import http from "node:http";
import { Server } from "socket.io";

const port = Number(process.env.PORT || 0);
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/broadcast") {
    const count = Number(url.searchParams.get("count") || 1);
    const pad = "x".repeat(Number(url.searchParams.get("pad") || 150));
    const rooms = (url.searchParams.get("rooms") || "agents").split(",");
    for (let i = 0; i < count; i++) {
      const room = rooms[i % rooms.length];
      io.to(room).emit("custom.bench", { event_type: "custom.bench", event_id: i, room, data: { t: Date.now(), pad } });
    }
    res.end("ok");
    return;
  }
  if (url.pathname === "/health") { res.end("ok"); return; }
  res.statusCode = 404;
  res.end();
});
const io = new Server(server, { transports: ["websocket"], perMessageDeflate: false });
// The same selection our server does: join the asked rooms (default "agents"), and only when the
// filter is empty or names the benchmark's event type.
io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  const types = auth.event_types || [];
  if (types.length && !types.includes("custom.bench")) return;
  for (const room of auth.rooms && auth.rooms.length ? auth.rooms : ["agents"]) socket.join(room);
});
server.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));

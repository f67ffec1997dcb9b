// Resume with the stock socket.io-client: `auth` is a function, so every reconnect sends the last
// event id (and the epoch) it saw. socket.io-client reconnects by itself after a network loss, but
// not after the server ended the connection ("io server disconnect"): then we reconnect ourselves,
// unless the server's `disconnected` said `kicked`.
// Env: URL, TOKEN, TOTAL, ROOMS (comma-separated, default "agents"), EVENT_TYPES (optional),
// LAST_EVENT_ID and EPOCH (optional: resume from there on the very first connect).
// Prints a JSON line per `connected`, `disconnected`, `disconnect` and event; exits 0 after TOTAL
// events or after being kicked ({"step": "stopped"}).
import { io } from "socket.io-client";

const { URL, TOKEN } = process.env;
const TOTAL = Number(process.env.TOTAL);
const ROOMS = (process.env.ROOMS || "agents").split(",").filter(Boolean);
const EVENT_TYPES = (process.env.EVENT_TYPES || "").split(",").filter(Boolean);
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));
let lastEventId = process.env.LAST_EVENT_ID ? Number(process.env.LAST_EVENT_ID) : null;
let epoch = process.env.EPOCH || null;
let serverReason = null; // data.reason of the last `disconnected`
let attempt = 0;
let count = 0;
const socket = io(URL, {
  transports: ["websocket"],
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  auth: (cb) => cb({ token: TOKEN, rooms: ROOMS, event_types: EVENT_TYPES, last_event_id: lastEventId, epoch }),
});
socket.on("connected", (envelope) => {
  const d = envelope.data;
  serverReason = null;
  attempt = 0;
  epoch = d.epoch;
  if (d.recovered !== true) lastEventId = d.last_event_id; // fresh start, or a gap to refetch
  say("connected", { recovered: d.recovered, replayed: d.replayed, connection_id: d.connection_id, epoch: d.epoch });
});
socket.on("disconnected", (envelope) => {
  serverReason = envelope.data.reason;
  say("disconnected", { reason: serverReason });
});
socket.on("disconnect", (reason) => {
  say("disconnect", { reason, server_reason: serverReason });
  if (reason !== "io server disconnect") return; // socket.io-client reconnects by itself
  if (serverReason === "kicked") {
    say("stopped", { reason: serverReason });
    process.exit(0);
  }
  // slow_consumer, idle_timeout, token_expired (with a refreshed token), server_shutdown, ...:
  // reconnect with backoff and jitter; auth() sends last_event_id, so nothing is lost.
  const delay = Math.min(100 * 2 ** attempt, 2000) * (0.5 + Math.random() / 2);
  attempt += 1;
  setTimeout(() => socket.connect(), delay);
});
socket.onAny((name, envelope) => {
  if (name === "connected" || !envelope || envelope.event_id == null) return;
  if (lastEventId !== null && envelope.event_id <= lastEventId) { // a duplicate can only repeat an id
    say("duplicate", { event_id: envelope.event_id, name });
    return;
  }
  lastEventId = envelope.event_id;
  count += 1;
  say("event", { event_id: envelope.event_id, name });
  if (count >= TOTAL) {
    socket.disconnect();
    process.exit(0);
  }
});
setTimeout(() => { console.error("timed out"); process.exit(2); }, Number(process.env.DEADLINE_MS || 30000));

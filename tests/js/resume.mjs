// Resume with the stock socket.io-client: `auth` is a function, so every reconnect sends the last
// event id it saw. Nothing else is needed from a client. Env: URL, TOKEN, TOTAL.
// Prints a JSON line per `connected` and per event; exits 0 after TOTAL events.
import { io } from "socket.io-client";

const { URL, TOKEN } = process.env;
const TOTAL = Number(process.env.TOTAL);
let lastEventId = null;
let count = 0;
const socket = io(URL, {
  transports: ["websocket"],
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  auth: (cb) => cb({ token: TOKEN, rooms: ["agents"], last_event_id: lastEventId }),
});
socket.on("connected", (envelope) => {
  const d = envelope.data;
  if (lastEventId === null) lastEventId = d.last_event_id;
  console.log(JSON.stringify({ step: "connected", recovered: d.recovered, replayed: d.replayed }));
});
socket.onAny((name, envelope) => {
  if (name === "connected" || !envelope || envelope.event_id == null) return;
  if (envelope.event_id <= lastEventId) return; // a duplicate can only repeat an id
  lastEventId = envelope.event_id;
  count += 1;
  console.log(JSON.stringify({ step: "event", event_id: envelope.event_id, name }));
  if (count >= TOTAL) {
    socket.disconnect();
    process.exit(0);
  }
});
setTimeout(() => { console.error("timed out"); process.exit(2); }, 30000);

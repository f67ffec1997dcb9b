// The browser contract, with the real socket.io-client@4 (what dashboards and React Native use).
// Env: URL, TOKEN, BROADCAST_URL (POST endpoint), ADMIN_TOKEN. Prints one JSON line per step;
// exits non-zero on the first broken expectation.
import { io } from "socket.io-client";

const { URL, TOKEN, ADMIN_TOKEN } = process.env;
const report = (step, data) => console.log(JSON.stringify({ step, ...data }));
const fail = (message) => { console.error(message); process.exit(1); };
const within = (ms, promise, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);

async function broadcast(body) {
  const response = await fetch(`${URL}/ws/broadcast`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify(body),
  });
  if (response.status !== 202) fail(`broadcast answered ${response.status}`);
  return (await response.json()).event_id;
}

const received = [];
const socket = io(URL, {
  transports: ["websocket"],
  reconnection: false,
  auth: (cb) => cb({ token: TOKEN, client_id: "browser-1", rooms: ["tasks"], event_types: [] }),
});
socket.onAny((name, envelope) => received.push({ name, envelope }));
const nextEvent = (name) =>
  within(5000, new Promise((resolve) => {
    const check = () => {
      const hit = received.find((r) => r.name === name);
      if (hit) resolve(hit.envelope); else setTimeout(check, 10);
    };
    check();
  }), name);

try {
  await within(5000, new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", (err) => reject(new Error(`connect_error ${JSON.stringify(err.data)}`)));
  }), "connect");
  const connected = await nextEvent("connected");
  if (received[0].name !== "connected") fail(`first event was ${received[0].name}`);
  report("connected", { data: connected.data });

  const joined = await socket.timeout(5000).emitWithAck("join", { room: "agents" });
  report("join", { ack: joined });
  const badRoom = await socket.timeout(5000).emitWithAck("join", { room: "nowhere" });
  report("join_bad", { ack: badRoom });
  const filtered = await socket.timeout(5000).emitWithAck("subscribe", { event_types: ["agent_created"] });
  report("subscribe", { ack: filtered });
  const unknown = await socket.timeout(5000).emitWithAck("self_destruct", {});
  report("unknown", { ack: unknown });

  // Filtered out (type), then delivered (type and room match).
  await broadcast({ event_type: "custom.noise", room: "agents", data: {} });
  const id = await broadcast({
    event_type: "agent_created",
    room: "agents",
    data: { agent_id: "a-1", agent_type: "macrophage", name: "m1", status: "active", health: 1.0, energy: 100.0,
            metadata: {}, created_at: "2026-01-01T00:00:00.000Z", updated_at: "2026-01-01T00:00:00.000Z" },
  });
  const event = await nextEvent("agent_created");
  report("event", { envelope: event, broadcast_id: id, names: received.map((r) => r.name) });
} catch (err) {
  fail(String(err));
} finally {
  socket.disconnect();
}

// Lean load generator: N raw WebSocket connections speaking Engine.IO v4 / Socket.IO v5 by hand
// (no socket.io-client per connection), so the generator is cheap next to the server under test.
// Reads one JSON config from argv[2]; prints JSON lines: {"phase": "connected", ...} once all
// are joined, then, on stdin commands, {"phase": "burst"|"paced", ...} results.
//   config: {url, clients, auth (object sent in the Socket.IO CONNECT), path}
//   stdin:  "count <deliveries>" → wait until that many more events arrived in total, report counts
//           "latency <seconds>" → collect delivery latency (payload field t = sender ms) for that long
import WebSocket from "ws";
import readline from "node:readline";

const cfg = JSON.parse(process.argv[2]);
const clients = [];
let delivered = 0;
let latencies = null;
const say = (obj) => console.log(JSON.stringify(obj));

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${cfg.url.replace("http", "ws")}${cfg.path || "/socket.io/"}?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
    });
    const state = { ws, joined: false, received: 0 };
    ws.on("message", (buf) => {
      const s = buf.toString();
      const kind = s.charCodeAt(0);
      if (kind === 50 /* "2" ping */) { ws.send("3"); return; }
      if (kind === 48 /* "0" open */) {
        // auth_variants: per-client auth objects, cycled by index (filters, rooms), merged over auth.
        const variants = cfg.auth_variants || [{}];
        ws.send("40" + JSON.stringify({ ...(cfg.auth || {}), ...variants[i % variants.length] }));
        return;
      }
      if (s.startsWith("40")) { state.joined = true; resolve(state); return; }
      if (s.startsWith("44")) { reject(new Error("connect_error " + s)); return; }
      if (s.startsWith("42")) {
        state.received += 1;
        delivered += 1;
        if (latencies !== null) {
          const at = s.indexOf('"t":');
          if (at > 0) latencies.push(Date.now() - parseFloat(s.slice(at + 4)));
        }
      }
    });
    ws.on("error", reject);
    clients.push(state);
  });
}

const started = Date.now();
const batch = 200;
for (let i = 0; i < cfg.clients; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, cfg.clients - i) }, (_, k) => open(i + k)));
}
say({ phase: "connected", clients: clients.length, seconds: (Date.now() - started) / 1000 });

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "count") {
    // Wait until the clients together received <arg> more events (or 120 s passed).
    const want = Number(arg);
    const base = delivered;
    const t0 = Date.now();
    const deadline = t0 + 120000;
    await new Promise((resolve) => {
      const check = () => {
        if (delivered - base >= want || Date.now() > deadline) resolve(); else setTimeout(check, 5);
      };
      check();
    });
    say({ phase: "count", deliveries: delivered - base, expected: want, seconds: (Date.now() - t0) / 1000 });
  } else if (cmd === "latency") {
    latencies = [];
    await new Promise((r) => setTimeout(r, Number(arg) * 1000));
    const sorted = latencies.sort((a, b) => a - b);
    latencies = null;
    const q = (p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null;
    say({ phase: "latency", samples: sorted.length, p50: q(0.5), p99: q(0.99), p999: q(0.999) });
  } else if (cmd === "quit") {
    break;
  }
}
for (const c of clients) c.ws.terminate();
process.exit(0);

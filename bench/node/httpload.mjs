// Keep-alive HTTP load: `concurrency` loops each sending one request after the other for `seconds`.
// Config (argv[2], JSON): {url, method, paths: [..], bodies: [..] (JSON strings, cycled), token,
// concurrency, seconds}. Prints one JSON line: {requests, statuses, latencies_ms: {p50, p99}, seconds}.
import http from "node:http";

const config = JSON.parse(process.argv[2]);
const target = new URL(config.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: config.concurrency });
const statuses = {};
const latencies = [];
let sent = 0;
let stop = false;

function once(index) {
  const body = config.bodies.length ? config.bodies[index % config.bodies.length] : null;
  const path = config.paths[index % config.paths.length];
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path,
        method: config.method,
        agent,
        headers: {
          authorization: `Bearer ${config.token}`,
          ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}),
        },
      },
      (response) => {
        response.on("data", () => {});
        response.on("end", () => {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          statuses[response.statusCode] = (statuses[response.statusCode] || 0) + 1;
          resolve();
        });
      },
    );
    request.on("error", () => {
      statuses.error = (statuses.error || 0) + 1;
      resolve();
    });
    if (body) request.write(body);
    request.end();
  });
}

async function loop(worker) {
  let n = worker;
  while (!stop) {
    await once(n);
    n += config.concurrency;
    sent += 1;
  }
}

const begun = process.hrtime.bigint();
setTimeout(() => {
  stop = true;
}, config.seconds * 1000);
await Promise.all(Array.from({ length: config.concurrency }, (_, worker) => loop(worker)));
const seconds = Number(process.hrtime.bigint() - begun) / 1e9;
latencies.sort((a, b) => a - b);
const pick = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
console.log(JSON.stringify({ requests: sent, statuses, latencies_ms: { p50: pick(0.5), p99: pick(0.99) }, seconds }));
agent.destroy();

// The Socket.IO connection, with its own reconnect loop so the page can say what happens:
// connecting, live, reconnecting in N s (and why), resumed, refused (and why), token expired.
// Every attempt sends fresh `auth` (the newest last_event_id), so the server replays what was missed.
const FATAL = new Set(["unauthorized", "forbidden", "invalid_request", "origin_not_allowed"]);
const BACKOFF_MS = { first: 1000, max: 15000 };

export function openSocket({ io, url, auth, onEvent, onState }) {
  const socket = io(url, { transports: ["websocket", "polling"], reconnection: false, autoConnect: false, auth: (cb) => cb(auth()) });
  let attempt = 0;
  let timer = null;
  let serverReason = null; // from `disconnected`, which the server sends just before it closes
  let stopped = false;

  const schedule = (why) => {
    if (stopped || timer) return;
    const delay = Math.min(BACKOFF_MS.first * 2 ** attempt, BACKOFF_MS.max) * (0.5 + Math.random() / 2);
    attempt += 1;
    const due = Date.now() + delay;
    const tick = () => {
      const left = due - Date.now();
      if (left <= 0) {
        timer = null;
        onState({ state: "connecting", detail: why, retryInS: null });
        socket.connect();
        return;
      }
      onState({ state: "reconnecting", detail: why, retryInS: Math.ceil(left / 1000) });
      timer = setTimeout(tick, Math.min(left, 1000));
    };
    tick();
  };

  socket.on("connected", (envelope) => {
    attempt = 0;
    serverReason = null;
    onEvent("connected", envelope);
  });
  socket.on("disconnected", (envelope) => {
    serverReason = envelope?.data?.reason ?? null;
    onEvent("disconnected", envelope);
  });
  socket.on("disconnect", (reason) => {
    if (stopped) return;
    if (serverReason === "kicked") {
      stopped = true;
      onState({ state: "closed", detail: "closed by an administrator; reload the page to connect again" });
    } else if (serverReason === "token_expired") {
      onState({ state: "expired", detail: "the token expired: paste a new one to resume" });
    } else {
      schedule(serverReason ? `the server closed the connection: ${serverReason}` : describe(reason));
    }
    serverReason = null;
  });
  socket.on("connect_error", (err) => {
    const code = err?.data?.code;
    const message = err?.data?.message || err?.message || "";
    if (code === "unauthorized" && /expired/i.test(message)) {
      onState({ state: "expired", detail: "the token expired: paste a new one to resume" });
    } else if (FATAL.has(code)) {
      onState({ state: "refused", detail: `${code}: ${message}` });
    } else {
      schedule(code ? `${code}: ${message}` : "the server cannot be reached");
    }
  });
  socket.onAny((name, envelope) => {
    if (name !== "connected" && name !== "disconnected") onEvent(name, envelope);
  });

  onState({ state: "connecting", detail: "", retryInS: null });
  socket.connect();
  return {
    socket,
    // After a new token: connect again at once (resuming from the last event id).
    reconnectNow() {
      clearTimeout(timer);
      timer = null;
      stopped = false;
      attempt = 0;
      if (socket.connected) socket.disconnect();
      onState({ state: "connecting", detail: "", retryInS: null });
      socket.connect();
    },
  };
}

function describe(reason) {
  if (reason === "transport close" || reason === "transport error") return "the connection was lost";
  if (reason === "ping timeout") return "the server stopped answering";
  if (reason === "io server disconnect") return "the server closed the connection";
  return reason;
}

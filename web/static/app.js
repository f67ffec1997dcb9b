// Live dashboard: plain socket.io-client, no build step. Resumes from the last event id on every
// reconnect (auth is a function, so each attempt sends the newest id), so a flaky network or a
// server restart leaves the feed complete.
"use strict";

const STATIC_ROOMS = ["agents", "tasks", "coordination", "system"];
const FEED_LIMIT = 300;
const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  rooms: new Set(JSON.parse(sessionStorage.getItem("immune.rooms") || '["agents","tasks","coordination","system"]')),
  lastEventId: numberOrNull(sessionStorage.getItem("immune.last_event_id")),
  epoch: sessionStorage.getItem("immune.epoch"),
  agents: new Map(),
  tasks: new Map(),
  received: 0,
};

function numberOrNull(value) {
  return value === null || value === "" ? null : Number(value);
}

function readToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get("token");
  if (fromHash) {
    sessionStorage.setItem("immune.token", fromHash);
    history.replaceState(null, "", location.pathname); // keep the token out of the visible URL
    return fromHash;
  }
  return sessionStorage.getItem("immune.token");
}

function setStatus(kind, text) {
  const el = $("status");
  el.className = `status status-${kind}`;
  el.dataset.state = kind;
  el.textContent = text;
}

function remember(envelope) {
  if (envelope && typeof envelope.event_id === "number") {
    state.lastEventId = envelope.event_id;
    sessionStorage.setItem("immune.last_event_id", String(envelope.event_id));
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// Events that arrive while a refetch is in flight: the snapshot may predate them, so they are
// applied again, in order, on top of it (set/delete by id, so re-applying is harmless).
let arrivedDuringRefetch = null;
let refetchesInFlight = 0;

async function refetch() {
  // Called on first connect and whenever the server could not recover our gap.
  if (refetchesInFlight++ === 0) arrivedDuringRefetch = [];
  $("agents").dataset.refetching = "true";
  for (const [path, map, key] of [["/agents?limit=200", state.agents, "agent_id"],
                                  ["/coordination/tasks?limit=200", state.tasks, "task_id"]]) {
    try {
      const body = await api(path);
      map.clear();
      for (const item of body.items || []) map.set(item[key], item);
    } catch (err) {
      console.debug("refetch skipped", String(err));
    }
  }
  if (--refetchesInFlight === 0) {
    const arrived = arrivedDuringRefetch || [];
    arrivedDuringRefetch = null;
    for (const [name, data] of arrived) updateEntities(name, data); // rendered once, below
  }
  renderEntities();
  if (refetchesInFlight === 0) $("agents").dataset.refetching = "false";
}

function applyEvent(name, data) {
  if (!data) return;
  if (arrivedDuringRefetch) arrivedDuringRefetch.push([name, data]);
  if (updateEntities(name, data)) renderEntities();
}

// Applies one event to the agent and task maps; true when it changed them.
function updateEntities(name, data) {
  if (name === "agent_created" || name === "agent_updated") state.agents.set(data.agent_id, data);
  else if (name === "agent_deleted") state.agents.delete(data.agent_id);
  else if (name === "agent_status_changed" && state.agents.has(data.agent_id)) state.agents.get(data.agent_id).status = data.new_status;
  else if (name === "task_created") state.tasks.set(data.task_id, data);
  else if (name.startsWith("task_") && data.task) state.tasks.set(data.task_id, data.task);
  else return false;
  return true;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "–" : String(text);
  return td;
}

function renderEntities() {
  const agents = $("agents");
  agents.replaceChildren(...[...state.agents.values()].map((a) => {
    const tr = document.createElement("tr");
    tr.append(cell(a.agent_id), cell(a.agent_type), cell(a.name), cell(a.status),
              cell(Number(a.health).toFixed(2)), cell(Math.round(a.energy)));
    return tr;
  }));
  $("agent-count").textContent = `(${state.agents.size})`;
  const tasks = $("tasks");
  tasks.replaceChildren(...[...state.tasks.values()].map((t) => {
    const tr = document.createElement("tr");
    tr.append(cell(t.task_id), cell(t.task_type), cell(t.priority), cell(t.status), cell(t.agent_id));
    return tr;
  }));
  $("task-count").textContent = `(${state.tasks.size})`;
}

function addToFeed(name, envelope) {
  const li = document.createElement("li");
  li.dataset.eventType = name;
  const id = envelope && envelope.event_id !== null && envelope.event_id !== undefined ? `#${envelope.event_id}` : "·";
  const room = envelope && envelope.room ? envelope.room : "*";
  li.innerHTML = `<span class="eid"></span> <span class="etype"></span> <span class="room"></span> <span class="data"></span>`;
  li.querySelector(".eid").textContent = id;
  li.querySelector(".etype").textContent = name;
  li.querySelector(".room").textContent = room;
  li.querySelector(".data").textContent = JSON.stringify(envelope ? envelope.data : null);
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > FEED_LIMIT) feed.lastChild.remove();
  state.received += 1;
  $("feed-info").textContent = `(${state.received} received, last id ${state.lastEventId ?? "–"})`;
}

function renderRooms(socket) {
  const box = $("rooms");
  box.replaceChildren(...[...new Set([...STATIC_ROOMS, ...state.rooms])].map((room) => {
    const chip = document.createElement("span");
    chip.className = `room-chip${state.rooms.has(room) ? " on" : ""}`;
    chip.textContent = room;
    chip.title = state.rooms.has(room) ? "click to leave" : "click to join";
    chip.onclick = () => toggleRoom(socket, room);
    return chip;
  }));
  sessionStorage.setItem("immune.rooms", JSON.stringify([...state.rooms]));
}

async function toggleRoom(socket, room) {
  const action = state.rooms.has(room) ? "leave" : "join";
  const ack = await socket.timeout(5000).emitWithAck(action, { room }).catch((err) => ({ success: false, message: String(err) }));
  $("last-ack").textContent = `${action} ${room}: ${ack.success ? "ok" : `${ack.error ? ack.error.code : ""} ${ack.message}`}`;
  if (ack.success) {
    state.rooms = new Set(ack.data.rooms);
    renderRooms(socket);
  }
}

async function refreshStats() {
  try {
    const s = await api("/ws/stats");
    const shown = {
      node: s.node_id, connections: s.active_connections, rooms: s.total_rooms, "events published": s.events_published,
      "messages sent": s.messages_sent, "events replayed": s.events_replayed, "rate limited": s.rate_limited,
      "slow consumers": s.slow_consumer_disconnects, uptime: `${Math.round(s.uptime_s)} s`,
    };
    $("stats").replaceChildren(...Object.entries(shown).flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v);
      return [dt, dd];
    }));
  } catch (err) {
    console.debug("stats unavailable", String(err));
  }
}

function connect() {
  const socket = io(location.origin, {
    transports: ["websocket", "polling"],
    auth: (cb) => cb({
      token: state.token,
      client_id: "dashboard",
      rooms: [...state.rooms],
      last_event_id: state.lastEventId,
      epoch: state.epoch,
    }),
  });
  socket.on("connected", (envelope) => {
    const d = envelope.data;
    state.epoch = d.epoch;
    sessionStorage.setItem("immune.epoch", d.epoch);
    state.rooms = new Set(d.rooms);
    renderRooms(socket);
    const resumed = d.recovered === true ? `, resumed ${d.replayed}` : d.recovered === false ? ", gap: refetched" : "";
    setStatus("connected", `connected as ${d.user} (${d.roles.join(",")})${resumed}`);
    refreshStats();
    if (d.recovered !== true) {
      if (d.recovered === false || state.lastEventId === null) state.lastEventId = d.last_event_id;
      refetch();
    }
  });
  // socket.io-client reconnects by itself after a network loss, but never after the server ended
  // the connection ("io server disconnect"). The server says why first (`disconnected`): we come
  // back (resuming from lastEventId) for slow_consumer, idle_timeout, token_expired,
  // server_shutdown, rate_limited…, but not after an administrator kicked us.
  let serverReason = null;
  let retries = 0;
  socket.on("connect", () => { retries = 0; });
  socket.on("disconnected", (envelope) => {
    serverReason = envelope.data.reason;
    setStatus("disconnected", `server closed: ${serverReason}`);
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io server disconnect") {
      setStatus("connecting", `reconnecting (${reason})…`);
      return;
    }
    if (serverReason === "kicked") {
      setStatus("disconnected", "closed by an administrator; reload to reconnect");
      return;
    }
    const delay = Math.min(250 * 2 ** retries, 5000) * (0.5 + Math.random() / 2);
    retries += 1;
    setStatus("connecting", `reconnecting (${serverReason || reason})…`);
    serverReason = null;
    setTimeout(() => socket.connect(), delay);
  });
  socket.on("connect_error", (err) => {
    const code = err.data && err.data.code;
    setStatus("refused", `refused: ${code || err.message}`);
    if (code === "unauthorized") {
      socket.disconnect();
      sessionStorage.removeItem("immune.token");
      $("token-form").hidden = false;
    }
  });
  socket.onAny((name, envelope) => {
    if (name === "connected") return;
    remember(envelope);
    addToFeed(name, envelope);
    applyEvent(name, envelope && envelope.data);
  });
  $("join-form").onsubmit = (e) => {
    e.preventDefault();
    const room = $("join-room").value.trim();
    if (room) toggleRoom(socket, room);
  };
  renderRooms(socket);
  refreshStats();
  setInterval(refreshStats, 5000);
  // Keep-alive: the server closes connections silent for IMMUNE_IDLE_TIMEOUT_S (default 300 s).
  setInterval(async () => {
    if (!socket.connected) return;
    const started = performance.now();
    const ack = await socket.timeout(5000).emitWithAck("ping", {}).catch(() => null);
    if (ack && ack.success) $("last-ack").textContent = `ping ${Math.round(performance.now() - started)} ms`;
  }, 60000);
  return socket;
}

function start() {
  $("token-entry").onsubmit = (e) => {
    e.preventDefault();
    sessionStorage.setItem("immune.token", $("token-input").value.trim());
    location.reload();
  };
  state.token = readToken();
  if (!state.token) {
    setStatus("refused", "no token");
    $("token-form").hidden = false;
    return;
  }
  window.immuneSocket = connect();
}

start();

// Wires the console together: the store (state.js), the page (render.js, charts.js), the socket
// (socket.js) and the REST API (api.js). No build step: the browser loads these ES modules as is.
import { io } from "/vendor/socket.io.esm.min.js";
import uPlot from "/vendor/uPlot.esm.js";
import { makeApi } from "./api.js";
import { createCharts } from "./charts.js";
import { createRenderer } from "./render.js";
import { openSocket } from "./socket.js";
import { initialState, reduce } from "./state.js";

const NODES_POLL_MS = 3000; // how often the Nodes panel asks GET /ws/stats
const BACKFILL = 200; // events read from GET /events on load, so the feed and history start full
const $ = (id) => document.getElementById(id);
const store = sessionStorage;

function createStore() {
  let state = initialState();
  let scheduled = false;
  const listeners = [];
  return {
    get: () => state,
    dispatch(action) {
      state = reduce(state, action);
      if (!scheduled) { // one render per frame however many events arrive
        scheduled = true;
        requestAnimationFrame(() => { scheduled = false; for (const fn of listeners) fn(state); });
      }
    },
    subscribe: (fn) => listeners.push(fn),
  };
}

function readToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromHash = params.get("token");
  if (fromHash) {
    store.setItem("immune.token", fromHash);
    history.replaceState(null, "", location.pathname); // keep the token out of the visible URL
    return fromHash;
  }
  return store.getItem("immune.token");
}

function start() {
  const app = createStore();
  const renderer = createRenderer();
  let token = readToken();
  const api = makeApi(() => token);
  const charts = createCharts(uPlot, { agents: $("chart-agents"), tasks: $("chart-tasks"), rate: $("chart-rate") });
  app.subscribe((state) => { renderer.render(state); charts.update(state.metrics.points); });
  window.addEventListener("resize", () => charts.resize());
  window.immuneConsole = { getState: app.get }; // for tests and the curious

  const saved = Number(store.getItem("immune.last_event_id"));
  if (store.getItem("immune.last_event_id") !== null && Number.isFinite(saved)) {
    app.dispatch({ type: "position", lastEventId: saved, epoch: store.getItem("immune.epoch") });
  }
  app.subscribe((state) => {
    if (state.lastEventId !== null) store.setItem("immune.last_event_id", String(state.lastEventId));
    if (state.epoch) store.setItem("immune.epoch", state.epoch);
  });

  let backfilled = false;
  async function refetch(head) {
    app.dispatch({ type: "refetch_started" });
    const [agents, tasks, proposals, election, health] = await Promise.all([
      api.all("/agents"), api.all("/coordination/tasks"), api.all("/coordination/consensus"),
      api.call("GET", "/coordination/election"), api.call("GET", "/health"),
    ].map((p) => p.catch((err) => { console.debug("refetch", String(err)); return null; })));
    const truncated = {};
    for (const [kind, page] of Object.entries({ agents, tasks, proposals })) {
      if (page?.truncated) truncated[kind] = { shown: page.items.length, total: page.total };
    }
    app.dispatch({ type: "snapshot", agents: agents?.items, tasks: tasks?.items, proposals: proposals?.items, election, health, truncated });
    if (!backfilled && head !== null) {
      backfilled = true;
      const after = Math.max(0, head - BACKFILL);
      const rooms = app.get().connection.rooms.join(",");
      try {
        const page = await api.call("GET", `/events?after=${after}&limit=${BACKFILL}${rooms ? `&rooms=${rooms}` : ""}`);
        for (const envelope of page.items) app.dispatch({ type: "event", name: envelope.event_type, envelope, live: false });
      } catch (err) {
        console.debug("backfill", String(err));
      }
    }
  }

  let connection = null;
  const connect = () => openSocket({
    io,
    url: location.origin,
    auth: () => {
      const { lastEventId, epoch, connection: c } = app.get();
      const rooms = c.rooms.length ? c.rooms : ["agents", "tasks", "coordination", "system"];
      return { token, client_id: "dashboard", rooms, last_event_id: lastEventId, epoch };
    },
    onState: (fields) => app.dispatch({ type: "connection", ...fields }),
    onEvent: (name, envelope) => {
      if (name === "connected") {
        const d = envelope.data;
        const fresh = app.get().lastEventId === null;
        app.dispatch({
          type: "connection", state: "live", detail: "", retryInS: null, user: d.user, roles: d.roles, rooms: d.rooms,
          resumed: d.recovered === true ? d.replayed : null, gap: d.recovered === false,
        });
        if (d.recovered !== true) {
          app.dispatch({ type: "position", lastEventId: d.last_event_id, epoch: d.epoch });
          refetch(fresh || d.recovered === false ? d.last_event_id : null);
        } else {
          app.dispatch({ type: "position", lastEventId: app.get().lastEventId, epoch: d.epoch });
          if (!backfilled) refetch(d.last_event_id);
        }
        return;
      }
      if (name === "disconnected") return; // socket.js says what happens next
      app.dispatch({ type: "event", name, envelope, live: true });
    },
  });

  if (token) connection = connect();
  else app.dispatch({ type: "connection", state: "no-token", detail: "" });

  $("token-entry").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token-input").value.trim();
    $("token-input").value = "";
    store.setItem("immune.token", token);
    if (connection) connection.reconnectNow(); // resumes from the last event id: nothing missed meanwhile
    else connection = connect();
  });

  // ---- operator actions (the server checks the role too; a viewer never sees these forms)
  const say = (text, ok = true) => {
    const toast = $("last-result");
    toast.hidden = false;
    toast.dataset.ok = String(ok);
    toast.textContent = text;
  };
  const act = async (label, fn) => {
    try {
      const result = await fn();
      say(`${label}: done`);
      return result;
    } catch (err) {
      say(`${label}: ${err.message}`, false);
      return null;
    }
  };
  $("agent-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("agent-name").value.trim();
    act("create agent", () => api.call("POST", "/agents", { agent_type: $("agent-type").value, ...(name ? { name } : {}) }))
      .then((r) => { if (r) $("agent-name").value = ""; });
  });
  $("agents").addEventListener("click", (e) => {
    const id = e.target.dataset?.runAction;
    if (!id) return;
    const action = document.querySelector(`select[data-agent-id="${CSS.escape(id)}"]`).value;
    const parameters = action === "attack" ? { target: "pathogen" } : {};
    act(`${action} ${id}`, () => api.call("POST", `/agents/${encodeURIComponent(id)}/actions`, { action, parameters }));
  });
  $("election-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("trigger election", () => api.call("POST", "/coordination/election/trigger"));
  });
  $("proposal-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { proposal_type: $("proposal-type").value.trim(), threshold: Number($("proposal-threshold").value) };
    act("propose", () => api.call("POST", "/coordination/consensus/propose", body));
  });
  $("proposals").addEventListener("click", async (e) => {
    const id = e.target.dataset?.vote;
    if (!id) return;
    const agentId = document.querySelector(`select[data-proposal-id="${CSS.escape(id)}"]`).value;
    const approve = e.target.dataset.approve === "true";
    const proposal = await act(`vote ${approve ? "for" : "against"} ${id}`, () => api.call("POST",
      `/coordination/consensus/${encodeURIComponent(id)}/votes`, { agent_id: agentId, approve }));
    if (proposal) app.dispatch({ type: "proposal", proposal }); // votes are not events: apply the answer
  });

  // ---- feed controls
  $("feed-pause").addEventListener("click", () => app.dispatch({ type: "feed_pause", paused: !app.get().feed.paused }));
  const filter = () => app.dispatch({ type: "feed_filter", room: $("feed-room").value, eventType: $("feed-type").value });
  $("feed-room").addEventListener("change", filter);
  $("feed-type").addEventListener("change", filter);

  // The Nodes panel: each live node's figures, polled (a node's presence is a few seconds old at most).
  const pollNodes = () => {
    if (!token) return;
    api.call("GET", "/ws/stats")
      .then((stats) => app.dispatch({ type: "nodes", stats, at: Date.now() }))
      .catch((err) => app.dispatch({ type: "nodes_failed", error: String(err.message || err) }));
  };
  pollNodes();
  setInterval(pollNodes, NODES_POLL_MS);

  // Keep-alive: the server closes connections silent for IMMUNE_IDLE_TIMEOUT_S (default 300 s).
  setInterval(() => {
    if (connection?.socket.connected) connection.socket.timeout(5000).emitWithAck("ping", {}).catch(() => {});
  }, 60000);
}

start();

// The console's state and its reducer: pure functions, no DOM and no network, so `node --test`
// can check them (web/test/state.test.mjs). Every collection has a bound, and what happens at the
// bound is counted in the state so the page can say it.
import { summarize } from "./summary.js";

export const LIMITS = {
  feed: 500, // newest events shown in the feed; older ones leave it (`feed.dropped` counts them)
  alerts: 100, // newest alerts kept (`alerts.dropped`)
  elections: 20, // newest election history entries
  metrics: 360, // metrics_updated points kept for the charts (an hour at the default 10 s)
  nodes: 100, // nodes shown in the Nodes panel (a cluster larger than this shows its first 100 by id)
  seen: 5000, // event ids remembered to drop duplicates (ids are increasing, so the oldest go first)
};

export function initialState() {
  return {
    connection: { state: "connecting", detail: "", user: null, roles: [], rooms: [], retryInS: null, resumed: null },
    lastEventId: null,
    epoch: null,
    seen: [], // ids already applied, ascending; the dedupe set is rebuilt from it when needed
    agents: new Map(), // agent_id -> { ...agent, changedAt, flash }
    tasks: new Map(),
    proposals: new Map(),
    election: { term: null, leaderId: null, electedAt: null, history: [] },
    alerts: { items: [], counts: { info: 0, warning: 0, critical: 0 }, dropped: 0 },
    health: { status: null, checks: {}, since: null },
    metrics: { points: [], latest: null },
    nodes: { items: [], carrier: null, error: null, at: null }, // GET /ws/stats, polled: each live node's figures
    feed: { items: [], dropped: 0, paused: false, pausedAt: null, filter: { room: "", type: "" }, seq: 0 },
    refetch: { inFlight: 0, arrived: [] },
    truncated: {}, // kind -> { shown, total } when a snapshot was capped
    tick: 0, // increases with every applied event (the page highlights rows changed at the latest ticks)
  };
}

// One action in, a new state out. Actions:
//   {type: "event", name, envelope, live}     an event from the socket (live) or GET /events (backfill)
//   {type: "refetch_started"} / {type: "snapshot", agents, tasks, proposals, election, truncated}
//   {type: "proposal", proposal}             a REST answer (our own vote)
//   {type: "connection", ...fields}          socket state, said plainly by the page
//   {type: "feed_pause", paused} / {type: "feed_filter", room, type}
//   {type: "nodes", stats, at} / {type: "nodes_failed", error}   GET /ws/stats: the live nodes
export function reduce(state, action) {
  switch (action.type) {
    case "event":
      return applyEvent(state, action.name, action.envelope, action.live !== false);
    case "refetch_started":
      return { ...state, refetch: { inFlight: state.refetch.inFlight + 1, arrived: state.refetch.inFlight ? state.refetch.arrived : [] } };
    case "snapshot":
      return applySnapshot(state, action);
    case "proposal":
      return { ...state, proposals: withEntity(state.proposals, action.proposal.proposal_id, action.proposal, state.tick) };
    case "connection":
      return { ...state, connection: { ...state.connection, ...without(action, "type") } };
    case "position":
      return { ...state, lastEventId: action.lastEventId, epoch: action.epoch ?? state.epoch };
    case "nodes":
      return { ...state, nodes: nodesFrom(action.stats, action.at) };
    case "nodes_failed":
      return { ...state, nodes: { ...state.nodes, error: action.error } };
    case "feed_pause":
      return { ...state, feed: { ...state.feed, paused: action.paused, pausedAt: action.paused ? state.feed.seq : null } };
    case "feed_filter":
      return { ...state, feed: { ...state.feed, filter: { room: action.room ?? "", type: action.eventType ?? "" } } };
    default:
      return state;
  }
}

function without(object, key) {
  const { [key]: _dropped, ...rest } = object;
  return rest;
}

function applyEvent(state, name, envelope, live) {
  if (!envelope || typeof envelope !== "object") return state;
  const id = typeof envelope.event_id === "number" ? envelope.event_id : null;
  if (id !== null && hasSeen(state.seen, id)) return state; // a resume or a backfill overlapping the live feed
  let next = { ...state, tick: state.tick + 1 };
  if (id !== null) {
    next.seen = remember(state.seen, id);
    if (live && (state.lastEventId === null || id > state.lastEventId)) next.lastEventId = id;
  }
  next.feed = addToFeed(state.feed, name, envelope);
  // A backfilled event is older than the snapshots of agents, tasks and proposals: it only fills
  // the history panels (alerts, elections, health, charts) and the feed.
  if (live || !ENTITY_EVENTS.has(name)) next = applyToPanels(next, name, envelope.data || {}, envelope);
  if (live && state.refetch.inFlight && ENTITY_EVENTS.has(name)) {
    next.refetch = { ...state.refetch, arrived: [...state.refetch.arrived, [name, envelope]] };
  }
  return next;
}

const ENTITY_EVENTS = new Set([
  "agent_created", "agent_updated", "agent_deleted", "agent_status_changed", "agent_action",
  "task_created", "task_assigned", "task_started", "task_completed", "task_failed", "task_cancelled",
  "consensus_proposed", "consensus_decided",
]);

function hasSeen(seen, id) {
  // `seen` is ascending; events arrive mostly in order, so look from the end.
  for (let i = seen.length - 1; i >= 0; i -= 1) {
    if (seen[i] === id) return true;
    if (seen[i] < id) return false;
  }
  return false;
}

function remember(seen, id) {
  const next = seen.length >= LIMITS.seen ? seen.slice(seen.length - LIMITS.seen + 1) : seen.slice();
  if (!next.length || next[next.length - 1] < id) next.push(id);
  else {
    const at = next.findIndex((x) => x > id);
    next.splice(at, 0, id);
  }
  return next;
}

function addToFeed(feed, name, envelope) {
  const seq = feed.seq + 1;
  const item = {
    seq,
    id: envelope.event_id ?? null,
    name,
    room: envelope.room ?? null,
    timestamp: envelope.timestamp ?? null,
    summary: summarize(name, envelope.data || {}),
    level: name === "alert_triggered" ? envelope.data?.level : null,
  };
  let items = [...feed.items, item];
  // Keep the feed in id order (a backfill arrives after live events that are newer than it).
  if (item.id !== null && feed.items.length && feed.items[feed.items.length - 1].id !== null
      && feed.items[feed.items.length - 1].id > item.id) {
    items.sort((a, b) => (a.id ?? Infinity) - (b.id ?? Infinity));
  }
  let dropped = feed.dropped;
  if (items.length > LIMITS.feed) {
    dropped += items.length - LIMITS.feed;
    items = items.slice(items.length - LIMITS.feed);
  }
  return { ...feed, items, dropped, seq };
}

function withEntity(map, key, value, tick) {
  const next = new Map(map);
  next.set(key, { ...value, changedAt: tick });
  return next;
}

function patchEntity(map, key, patch, tick) {
  if (!map.has(key)) return map;
  return withEntity(map, key, { ...map.get(key), ...patch }, tick);
}

function applyToPanels(state, name, data, envelope) {
  const tick = state.tick;
  switch (name) {
    case "agent_created":
    case "agent_updated":
      return { ...state, agents: withEntity(state.agents, data.agent_id, data, tick) };
    case "agent_deleted": {
      const agents = new Map(state.agents);
      agents.delete(data.agent_id);
      return { ...state, agents };
    }
    case "agent_status_changed":
      return { ...state, agents: patchEntity(state.agents, data.agent_id, { status: data.new_status }, tick) };
    case "agent_action": {
      const result = data.result || {};
      const patch = {};
      for (const key of ["status", "energy", "health"]) if (result[key] !== undefined) patch[key] = result[key];
      patch.lastAction = data.action;
      return { ...state, agents: patchEntity(state.agents, data.agent_id, patch, tick) };
    }
    case "task_created":
      return { ...state, tasks: withEntity(state.tasks, data.task_id, data, tick) };
    case "task_assigned":
    case "task_started":
    case "task_completed":
    case "task_failed":
    case "task_cancelled": {
      const task = data.task || { ...(state.tasks.get(data.task_id) || { task_id: data.task_id }), status: data.new_status };
      return { ...state, tasks: withEntity(state.tasks, data.task_id, task, tick) };
    }
    case "consensus_proposed":
      return { ...state, proposals: withEntity(state.proposals, data.proposal_id, data, tick) };
    case "consensus_decided": {
      const known = state.proposals.get(data.proposal_id) || { proposal_id: data.proposal_id, votes: {} };
      const patch = {
        status: data.decision, approval_rate: data.approval_rate, votes_for: data.votes_for,
        votes_against: data.votes_against, decided_at: envelope.timestamp,
      };
      return { ...state, proposals: withEntity(state.proposals, data.proposal_id, { ...known, ...patch }, tick) };
    }
    case "election_triggered":
      return { ...state, election: pushElection(state.election, { kind: "triggered", term: data.term, at: envelope.timestamp }) };
    case "leader_elected": {
      const election = pushElection(state.election, {
        kind: "elected", term: data.term, leaderId: data.leader_id, previous: data.previous_leader_id, at: envelope.timestamp,
      });
      if (election.term === null || data.term >= election.term) {
        election.term = data.term;
        election.leaderId = data.leader_id;
        election.electedAt = envelope.timestamp;
      }
      return { ...state, election };
    }
    case "alert_triggered":
      return { ...state, alerts: pushAlert(state.alerts, { ...data, id: envelope.event_id, at: envelope.timestamp }) };
    case "health_changed":
      return { ...state, health: { status: data.status, checks: data.checks || {}, since: envelope.timestamp } };
    case "metrics_updated": {
      const point = { t: Date.parse(envelope.timestamp) / 1000, ...data };
      let points = [...state.metrics.points, point].sort((a, b) => a.t - b.t);
      if (points.length > LIMITS.metrics) points = points.slice(points.length - LIMITS.metrics);
      const latest = !state.metrics.latest || point.t >= state.metrics.latest.t ? point : state.metrics.latest;
      return { ...state, metrics: { points, latest } };
    }
    default:
      return state;
  }
}

function pushElection(election, entry) {
  const history = [entry, ...election.history].sort((a, b) => (b.term - a.term) || (a.kind === "elected" ? -1 : 1));
  return { ...election, history: history.slice(0, LIMITS.elections) };
}

function pushAlert(alerts, alert) {
  const counts = { ...alerts.counts, [alert.level]: (alerts.counts[alert.level] || 0) + 1 };
  let items = [alert, ...alerts.items].sort((a, b) => (b.id ?? 0) - (a.id ?? 0));
  let dropped = alerts.dropped;
  if (items.length > LIMITS.alerts) {
    dropped += items.length - LIMITS.alerts;
    items = items.slice(0, LIMITS.alerts);
  }
  return { items, counts, dropped };
}

// Each live node's own figures (one node when not clustered), by id; a node that died is simply
// not listed any more (its presence expired), so the panel always shows the live set.
function nodesFrom(stats, at) {
  const items = (stats?.nodes || []).map((n) => ({
    nodeId: String(n.node_id), connections: n.active_connections ?? 0, published: n.events_published ?? 0,
    uptimeS: n.uptime_s ?? null, answering: n.node_id === stats.node_id,
  })).sort((a, b) => a.nodeId.localeCompare(b.nodeId)).slice(0, LIMITS.nodes);
  const carrier = stats?.carrier ? { status: stats.carrier.status, reason: stats.carrier.reason ?? null } : null;
  return { items, carrier, error: stats?.cluster_error ?? null, at };
}

function applySnapshot(state, action) {
  const tick = state.tick;
  const keyed = (items, key) => new Map((items || []).map((item) => [item[key], { ...item, changedAt: 0 }]));
  let next = {
    ...state,
    agents: action.agents ? keyed(action.agents, "agent_id") : state.agents,
    tasks: action.tasks ? keyed(action.tasks, "task_id") : state.tasks,
    proposals: action.proposals ? keyed(action.proposals, "proposal_id") : state.proposals,
    truncated: action.truncated || state.truncated,
  };
  if (action.election) {
    next.election = {
      ...state.election,
      term: Math.max(state.election.term ?? 0, action.election.term ?? 0),
      leaderId: (action.election.term ?? 0) >= (state.election.term ?? 0) ? action.election.leader_id : state.election.leaderId,
      electedAt: action.election.elected_at ?? state.election.electedAt,
    };
  }
  if (action.health) next.health = { status: action.health.status, checks: action.health.checks || {}, since: null };
  const inFlight = Math.max(0, state.refetch.inFlight - 1);
  // Events that arrived while the snapshot was in flight may be newer than it: apply them again.
  for (const [name, envelope] of state.refetch.arrived) next = applyToPanels(next, name, envelope.data || {}, envelope);
  next.tick = Math.max(next.tick, tick);
  next.refetch = { inFlight, arrived: inFlight ? state.refetch.arrived : [] };
  return next;
}

// ---- views: what the page shows, derived from the state (also tested)

// Agents and tasks: the most recently created or changed first.
export function newestFirst(map) {
  return [...map.values()].sort((a, b) => (b.changedAt - a.changedAt)
    || String(b.updated_at || b.created_at || "").localeCompare(String(a.updated_at || a.created_at || "")));
}

export function countBy(map, field) {
  const counts = {};
  for (const item of map.values()) counts[item[field]] = (counts[item[field]] || 0) + 1;
  return counts;
}

export function visibleFeed(feed) {
  const { room, type } = feed.filter;
  return feed.items.filter((item) => (!feed.paused || item.seq <= feed.pausedAt)
    && (!room || item.room === room || (room === "*" && item.room === null))
    && (!type || item.name === type));
}

export function heldWhilePaused(feed) {
  return feed.paused ? feed.items.filter((item) => item.seq > feed.pausedAt).length : 0;
}

export function voteProgress(proposal) {
  const votes = Object.values(proposal.votes || {});
  const approvals = proposal.votes_for ?? votes.filter(Boolean).length;
  const against = proposal.votes_against ?? votes.filter((v) => !v).length;
  const eligible = (proposal.eligible_voters || []).length;
  const needed = eligible ? Math.ceil(eligible * (proposal.threshold ?? 0.66) - 1e-9) : null;
  return { approvals, against, eligible, needed };
}

export function canOperate(roles) {
  return roles.includes("operator") || roles.includes("admin");
}

// The console's reducer and views, without a browser: `node --test web/test/` (run by pytest too).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LIMITS, canOperate, heldWhilePaused, initialState, newestFirst, reduce, visibleFeed, voteProgress } from "../static/js/state.js";
import { summarize } from "../static/js/summary.js";

const T = "2026-01-01T00:00:00.000Z";
const agent = (id, extra = {}) => ({ agent_id: id, agent_type: "macrophage", name: id, status: "active", health: 1, energy: 100, ...extra });
const ev = (id, name, data, room = "agents") => ({ type: "event", name, live: true, envelope: { event_id: id, event_type: name, timestamp: T, room, data } });
const run = (...actions) => actions.reduce(reduce, initialState());

test("agent_action applies energy and status at once", () => {
  const s = run(ev(1, "agent_created", agent("a1")),
    ev(2, "agent_action", { agent_id: "a1", action: "patrol", result: { status: "patrolling", energy: 95, energy_delta: -5 } }));
  assert.equal(s.agents.get("a1").energy, 95);
  assert.equal(s.agents.get("a1").status, "patrolling");
  assert.equal(s.lastEventId, 2);
  assert.match(s.feed.items[1].summary, /patrol: patrolling, energy 100 → 95/);
});

test("every agent and task event is applied; the newest or changed row comes first", () => {
  const s = run(ev(1, "agent_created", agent("a1")), ev(2, "agent_created", agent("a2")),
    ev(3, "agent_status_changed", { agent_id: "a1", old_status: "active", new_status: "resting" }),
    ev(4, "task_created", { task_id: "t1", task_type: "scan", priority: 5, status: "pending" }, "tasks"),
    ev(5, "task_started", { task_id: "t1", old_status: "pending", new_status: "running", task: { task_id: "t1", task_type: "scan", priority: 5, status: "running" } }, "tasks"),
    ev(6, "agent_deleted", { agent_id: "a2" }));
  assert.deepEqual(newestFirst(s.agents).map((a) => a.agent_id), ["a1"]);
  assert.equal(s.agents.get("a1").status, "resting");
  assert.equal(s.tasks.get("t1").status, "running");
  const t = run(ev(1, "agent_created", agent("a1")), ev(2, "agent_created", agent("a2")),
    ev(3, "agent_updated", agent("a1", { health: 0.5 })));
  assert.deepEqual(newestFirst(t.agents).map((a) => a.agent_id), ["a1", "a2"]);
});

test("duplicates by event id are dropped (a resume or a backfill overlapping the live feed)", () => {
  const s = run(ev(1, "agent_created", agent("a1")), ev(1, "agent_created", agent("a1")),
    { ...ev(1, "agent_created", agent("a1")), live: false });
  assert.equal(s.feed.items.length, 1);
});

test("a backfilled event fills history and the feed in id order, never an entity snapshot", () => {
  let s = run(ev(10, "agent_created", agent("a1")));
  s = reduce(s, { ...ev(3, "agent_deleted", { agent_id: "a1" }), live: false });
  s = reduce(s, { ...ev(4, "alert_triggered", { level: "critical", message: "hot", details: {} }, "system"), live: false });
  assert.ok(s.agents.has("a1"), "an old agent_deleted must not remove a live agent");
  assert.deepEqual(s.feed.items.map((i) => i.id), [3, 4, 10]);
  assert.equal(s.alerts.counts.critical, 1);
  assert.equal(s.lastEventId, 10);
});

test("events that arrive during a refetch survive the older snapshot", () => {
  let s = run({ type: "refetch_started" }, ev(7, "agent_created", agent("live")));
  s = reduce(s, { type: "snapshot", agents: [agent("old")], tasks: [], proposals: [] });
  assert.deepEqual([...s.agents.keys()].sort(), ["live", "old"]);
  assert.equal(s.refetch.inFlight, 0);
});

test("election: leader, term and history", () => {
  const s = run(ev(1, "election_triggered", { term: 1 }, "coordination"),
    ev(2, "leader_elected", { term: 1, leader_id: "a1", previous_leader_id: null }, "coordination"),
    ev(3, "election_triggered", { term: 2 }, "coordination"),
    ev(4, "leader_elected", { term: 2, leader_id: "a2", previous_leader_id: "a1" }, "coordination"));
  assert.equal(s.election.leaderId, "a2");
  assert.equal(s.election.term, 2);
  assert.equal(s.election.history[0].leaderId, "a2");
  assert.equal(s.election.history.length, 4);
});

test("consensus: proposal, vote progress and outcome", () => {
  const proposal = { proposal_id: "p1", proposal_type: "scale_up", threshold: 0.66, status: "pending", votes: {}, eligible_voters: ["a1", "a2", "a3"] };
  let s = run(ev(1, "consensus_proposed", proposal, "coordination"));
  assert.deepEqual(voteProgress(s.proposals.get("p1")), { approvals: 0, against: 0, eligible: 3, needed: 2 });
  s = reduce(s, { type: "proposal", proposal: { ...proposal, votes: { a1: true, a2: false } } });
  assert.deepEqual(voteProgress(s.proposals.get("p1")), { approvals: 1, against: 1, eligible: 3, needed: 2 });
  s = reduce(s, ev(2, "consensus_decided", { proposal_id: "p1", decision: "rejected", approval_rate: 0.5, votes_for: 1, votes_against: 2 }, "coordination"));
  assert.equal(s.proposals.get("p1").status, "rejected");
  assert.equal(voteProgress(s.proposals.get("p1")).against, 2);
});

test("alerts by level, health and metrics history are bounded", () => {
  let s = initialState();
  for (let i = 1; i <= LIMITS.alerts + 5; i += 1) {
    s = reduce(s, ev(i, "alert_triggered", { level: i % 2 ? "warning" : "critical", message: `m${i}`, details: {} }, "system"));
  }
  assert.equal(s.alerts.items.length, LIMITS.alerts);
  assert.equal(s.alerts.dropped, 5);
  assert.equal(s.alerts.counts.warning + s.alerts.counts.critical, LIMITS.alerts + 5);
  assert.equal(s.alerts.items[0].message, `m${LIMITS.alerts + 5}`);
  s = reduce(s, ev(1000, "health_changed", { status: "degraded", previous_status: "healthy", checks: { database: "slow" } }, "system"));
  assert.equal(s.health.status, "degraded");
  for (let i = 0; i < LIMITS.metrics + 3; i += 1) {
    const envelope = { event_id: 2000 + i, timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), room: "system",
      data: { connections: 1, events_per_s: i, events_published: i, agents_by_status: { active: i }, tasks_by_status: {} } };
    s = reduce(s, { type: "event", name: "metrics_updated", envelope, live: true });
  }
  assert.equal(s.metrics.points.length, LIMITS.metrics);
  assert.equal(s.metrics.latest.events_per_s, LIMITS.metrics + 2);
});

test("the feed is bounded, filterable by room and type, and pausable", () => {
  let s = initialState();
  for (let i = 1; i <= LIMITS.feed + 10; i += 1) s = reduce(s, ev(i, i % 2 ? "agent_created" : "task_created", i % 2 ? agent(`a${i}`) : { task_id: `t${i}` }, i % 2 ? "agents" : "tasks"));
  assert.equal(s.feed.items.length, LIMITS.feed);
  assert.equal(s.feed.dropped, 10);
  s = reduce(s, { type: "feed_filter", room: "tasks" });
  assert.ok(visibleFeed(s.feed).every((i) => i.room === "tasks"));
  s = reduce(s, { type: "feed_filter", eventType: "agent_created" });
  assert.ok(visibleFeed(s.feed).every((i) => i.name === "agent_created"));
  s = reduce(s, { type: "feed_filter" });
  s = reduce(s, { type: "feed_pause", paused: true });
  s = reduce(s, ev(9999, "agent_created", agent("late")));
  assert.ok(!visibleFeed(s.feed).some((i) => i.id === 9999), "a paused feed does not move");
  assert.equal(heldWhilePaused(s.feed), 1);
  s = reduce(s, { type: "feed_pause", paused: false });
  assert.equal(visibleFeed(s.feed).at(-1).id, 9999);
});

test("summaries are one readable line; unknown types fall back to their data", () => {
  assert.equal(summarize("leader_elected", { term: 3, leader_id: "a9", previous_leader_id: null }), "leader a9 elected for term 3");
  assert.equal(summarize("alert_triggered", { level: "critical", message: "hot" }), "CRITICAL alert: hot");
  assert.equal(summarize("custom.x", { a: 1 }), 'custom.x: {"a":1}');
  assert.ok(!summarize("metrics_updated", { connections: 2, events_per_s: 1.5, events_published: 9 }).includes("{"));
});

test("operator and admin tokens can act; a viewer cannot", () => {
  assert.equal(canOperate(["viewer"]), false);
  assert.equal(canOperate(["operator"]), true);
  assert.equal(canOperate(["admin"]), true);
});

test("the Nodes panel lists each live node by id and says the carrier's state", () => {
  const stats = {
    node_id: "node-b", carrier: { status: "down", reason: "subscription lost" }, cluster_error: null,
    nodes: [
      { node_id: "node-b", active_connections: 2, events_published: 9, uptime_s: 30 },
      { node_id: "node-a", active_connections: 5, events_published: 9, uptime_s: 60 },
    ],
  };
  const s = run({ type: "nodes", stats, at: 1 });
  assert.deepEqual(s.nodes.items.map((n) => [n.nodeId, n.connections, n.answering]), [["node-a", 5, false], ["node-b", 2, true]]);
  assert.deepEqual(s.nodes.carrier, { status: "down", reason: "subscription lost" });
  // A node that died drops out at the next poll; a failed poll keeps the last list and says why.
  const later = reduce(s, { type: "nodes", stats: { ...stats, nodes: stats.nodes.slice(0, 1) }, at: 2 });
  assert.deepEqual(later.nodes.items.map((n) => n.nodeId), ["node-b"]);
  const failed = reduce(later, { type: "nodes_failed", error: "503" });
  assert.equal(failed.nodes.items.length, 1);
  assert.equal(failed.nodes.error, "503");
  // One node, not clustered: itself, no carrier.
  const single = run({ type: "nodes", stats: { node_id: "n1", nodes: [{ node_id: "n1", active_connections: 1 }] }, at: 3 });
  assert.equal(single.nodes.items.length, 1);
  assert.equal(single.nodes.carrier, null);
});

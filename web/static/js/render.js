// Rendering: the state in, the DOM out. Nothing here changes the state or talks to the server;
// buttons carry data-* attributes that main.js handles.
import { LIMITS, canOperate, countBy, heldWhilePaused, newestFirst, visibleFeed, voteProgress } from "./state.js";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key === "text") node.textContent = value;
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const pct = (x) => (typeof x === "number" ? `${Math.round(x * 100)}%` : "–");
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

const STATUS_TEXT = {
  connecting: () => "connecting…",
  live: (c) => `live as ${c.user ?? "?"} (${c.roles.join(", ")})${c.resumed !== null && c.resumed !== undefined ? ` · resumed, ${c.resumed} missed event${c.resumed === 1 ? "" : "s"} replayed` : ""}${c.gap ? " · gap: state refetched" : ""}`,
  reconnecting: (c) => `reconnecting in ${c.retryInS} s — ${c.detail}`,
  refused: (c) => `refused: ${c.detail}`,
  expired: () => "token expired — paste a new one below",
  closed: (c) => c.detail,
  "no-token": () => "no token — paste one below",
};

export function createRenderer() {
  let renderedTick = 0; // rows changed after this are highlighted once

  function render(state) {
    const operator = canOperate(state.connection.roles);
    renderConnection(state, operator);
    renderHealth(state);
    renderNodes(state);
    renderElection(state, operator);
    renderAlerts(state);
    renderAgents(state, operator, renderedTick);
    renderTasks(state, renderedTick);
    renderProposals(state, operator, renderedTick);
    renderFeed(state);
    renderedTick = state.tick;
  }
  return { render };
}

function renderConnection(state, operator) {
  const c = state.connection;
  const status = $("status");
  status.dataset.state = c.state;
  status.textContent = (STATUS_TEXT[c.state] || (() => c.state))(c);
  const form = $("token-form");
  form.hidden = !["expired", "refused", "no-token"].includes(c.state);
  $("token-reason").textContent = c.state === "expired" ? "Your token expired." : c.state === "refused" ? `The server refused the token: ${c.detail}` : "No token.";
  const mode = $("mode");
  mode.hidden = c.state !== "live";
  mode.dataset.mode = operator ? "operator" : "viewer";
  mode.textContent = operator
    ? "Operator token: you can create agents, run actions, trigger elections, propose and vote."
    : "Read-only: this is a viewer token. Actions need an operator token (immune-core token --role operator).";
  for (const form of document.querySelectorAll("form.act")) form.hidden = !operator;
  document.body.dataset.mode = operator ? "operator" : "viewer";
}

function renderHealth(state) {
  const m = state.metrics.latest;
  const rows = {
    health: state.health.status ?? "unknown",
    connections: m?.connections ?? "–",
    "events/s": m ? Math.round(m.events_per_s * 100) / 100 : "–",
    "events published": m?.events_published ?? "–",
    "last event id": state.lastEventId ?? "–",
    ...Object.fromEntries(Object.entries(state.health.checks).map(([k, v]) => [`check: ${k}`, typeof v === "object" ? JSON.stringify(v) : v])),
  };
  $("health").replaceChildren(...Object.entries(rows).flatMap(([k, v]) => [
    el("dt", { text: k }), el("dd", { text: String(v), "data-key": k, class: k === "health" ? `health-${v}` : null }),
  ]));
}

function renderNodes(state) {
  const { items, carrier, error } = state.nodes;
  const uptime = (s) => (typeof s !== "number" ? "–" : s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);
  $("nodes").replaceChildren(...items.map((n) => el("tr", { "data-node-id": n.nodeId, class: n.answering ? "answering" : null },
    el("td", { text: n.nodeId + (n.answering ? " (this page's)" : "") }), el("td", { class: "connections", text: String(n.connections) }),
    el("td", { text: String(n.published) }), el("td", { text: uptime(n.uptimeS) }))));
  const notes = [`${items.length} live`];
  if (carrier) notes.push(`carrier ${carrier.status}${carrier.reason ? `: ${carrier.reason}` : ""}`);
  if (error) notes.push(`cluster view: ${error}`);
  $("nodes-info").textContent = notes.join(" · ");
}

function renderElection(state, operator) {
  const e = state.election;
  $("leader").textContent = e.leaderId ? `leader ${e.leaderId} · term ${e.term}` : e.term ? `no leader · term ${e.term}` : "no election yet";
  $("leader").dataset.leader = e.leaderId ?? "";
  $("election-history").replaceChildren(...e.history.map((h) => el("li", {
    text: h.kind === "elected" ? `term ${h.term}: ${h.leaderId ?? "no leader"}${h.previous && h.previous !== h.leaderId ? ` (was ${h.previous})` : ""} ${time(h.at)}` : `term ${h.term}: election triggered ${time(h.at)}`,
  })));
  $("election-form").hidden = !operator;
}

function renderAlerts(state) {
  const { counts, items, dropped } = state.alerts;
  $("alert-counts").replaceChildren(...["critical", "warning", "info"].map((level) => el("span", {
    class: `count level-${level}`, "data-level": level, text: `${counts[level] || 0} ${level}`,
  })));
  $("alerts").replaceChildren(...items.map((a) => el("li", { class: `level-${a.level}`, "data-level": a.level },
    el("strong", { text: a.level }), ` ${a.message} `, el("span", { class: "muted", text: time(a.at) }))),
    ...(dropped ? [el("li", { class: "muted", text: `${dropped} older alerts not shown (the newest ${LIMITS.alerts} are kept)` })] : []));
}

function renderAgents(state, operator, since) {
  const agents = newestFirst(state.agents);
  const byStatus = Object.entries(countBy(state.agents, "status")).map(([k, v]) => `${v} ${k}`).join(", ");
  const cut = state.truncated.agents;
  $("agent-count").textContent = `(${state.agents.size}${byStatus ? `: ${byStatus}` : ""})${cut ? ` — showing ${cut.shown} of ${cut.total}` : ""}`;
  $("agents").replaceChildren(...agents.map((a) => {
    const energy = Math.round(a.energy ?? 0);
    return el("tr", { "data-agent-id": a.agent_id, class: a.changedAt > since ? "fresh" : null },
      el("td", {}, el("strong", { text: a.name || a.agent_id }), a.name ? el("small", { class: "muted", text: ` ${a.agent_id}` }) : null),
      el("td", { text: a.agent_type }),
      el("td", {}, el("span", { class: `badge status-${a.status}`, text: a.status })),
      el("td", { class: "health", text: pct(a.health) }),
      el("td", { class: "energy" }, el("meter", { min: 0, max: 100, value: energy }), ` ${energy}`),
      el("td", { class: "act" }, operator ? actionPicker(a) : null));
  }));
}

function actionPicker(agent) {
  const select = el("select", { "aria-label": `action for ${agent.agent_id}`, "data-agent-id": agent.agent_id },
    ...["patrol", "attack", "rest", "activate", "deactivate"].map((a) => el("option", { text: a, value: a })));
  return el("span", { class: "action-picker" }, select, el("button", { type: "button", "data-run-action": agent.agent_id, text: "Run" }));
}

function renderTasks(state, since) {
  const tasks = newestFirst(state.tasks);
  const byStatus = Object.entries(countBy(state.tasks, "status")).map(([k, v]) => `${v} ${k}`).join(", ");
  const cut = state.truncated.tasks;
  $("task-count").textContent = `(${state.tasks.size}${byStatus ? `: ${byStatus}` : ""})${cut ? ` — showing ${cut.shown} of ${cut.total}` : ""}`;
  $("tasks").replaceChildren(...tasks.map((t) => el("tr", { "data-task-id": t.task_id, class: t.changedAt > since ? "fresh" : null },
    el("td", { text: t.task_id }), el("td", { text: t.task_type }), el("td", { text: t.priority ?? "–" }),
    el("td", {}, el("span", { class: `badge task-${t.status}`, text: t.status })), el("td", { text: t.agent_id ?? "–" }))));
}

function renderProposals(state, operator, since) {
  const proposals = newestFirst(state.proposals);
  const pending = proposals.filter((p) => p.status === "pending").length;
  $("proposal-count").textContent = `(${proposals.length}, ${pending} open)`;
  $("proposals").replaceChildren(...proposals.map((p) => {
    const { approvals, against, eligible, needed } = voteProgress(p);
    const bar = el("progress", { max: Math.max(eligible, 1), value: approvals });
    const voters = (p.eligible_voters || []).filter((v) => !(v in (p.votes || {})));
    const voteForm = operator && p.status === "pending" && voters.length
      ? el("span", { class: "vote" },
        el("select", { "aria-label": "voting agent", "data-proposal-id": p.proposal_id },
          ...voters.map((v) => el("option", { value: v, text: state.agents.get(v)?.name || v }))),
        el("button", { type: "button", "data-vote": p.proposal_id, "data-approve": "true", text: "Approve" }),
        el("button", { type: "button", "data-vote": p.proposal_id, "data-approve": "false", class: "secondary", text: "Reject" }))
      : null;
    return el("li", { "data-proposal-id": p.proposal_id, "data-status": p.status, class: p.changedAt > since ? "fresh" : null },
      el("div", {}, el("strong", { text: p.proposal_type || p.proposal_id }), " ",
        el("span", { class: `badge proposal-${p.status}`, text: p.status }), " ",
        el("small", { class: "muted", text: p.proposal_id })),
      el("div", { class: "progress" }, bar,
        el("span", { class: "votes", text: ` ${approvals} for, ${against} against of ${eligible} voter${eligible === 1 ? "" : "s"}${needed !== null ? ` · ${needed} needed (threshold ${pct(p.threshold)})` : ""}${p.status !== "pending" && typeof p.approval_rate === "number" ? ` · ${pct(p.approval_rate)} approved` : ""}` })),
      voteForm);
  }));
}

function renderFeed(state) {
  const feed = state.feed;
  const items = visibleFeed(feed).slice(-200).reverse(); // newest first; the DOM shows the newest 200 that match
  const held = heldWhilePaused(feed);
  $("feed-info").textContent = `(${feed.items.length} kept${feed.dropped ? `, ${feed.dropped} older dropped` : ""}${held ? ` · paused: ${held} new` : ""})`;
  $("feed-pause").textContent = feed.paused ? `Resume${held ? ` (${held} new)` : ""}` : "Pause";
  $("feed-pause").setAttribute("aria-pressed", String(feed.paused));
  const types = $("feed-type");
  const known = new Set([...types.options].map((o) => o.value));
  for (const item of feed.items) {
    if (!known.has(item.name)) {
      known.add(item.name);
      types.append(el("option", { value: item.name, text: item.name }));
    }
  }
  $("feed").replaceChildren(...items.map((item) => el("li", {
    "data-event-type": item.name, "data-event-id": item.id ?? "", class: item.level ? `level-${item.level}` : null,
  }, el("span", { class: "eid", text: item.id !== null ? `#${item.id}` : "·" }), " ",
  el("span", { class: "room", text: item.room ?? "*" }), " ",
  el("span", { class: "summary", text: item.summary }), " ",
  el("time", { class: "muted", text: time(item.timestamp) }))));
}

// One readable line per event, for the feed ("agent m1 (macrophage) patrol: energy 90 → 85").
const pct = (x) => (typeof x === "number" ? `${Math.round(x * 100)}%` : "–");
const num = (x) => (typeof x === "number" ? String(Math.round(x * 100) / 100) : "–");
const who = (d) => (d.name ? `${d.name} (${d.agent_id})` : d.agent_id);

const SUMMARIES = {
  agent_created: (d) => `agent ${who(d)} created: ${d.agent_type}, ${d.status}`,
  agent_updated: (d) => `agent ${who(d)} updated: ${d.status}, health ${pct(d.health)}, energy ${num(d.energy)}`,
  agent_deleted: (d) => `agent ${d.agent_id} deleted`,
  agent_status_changed: (d) => `agent ${d.agent_id}: ${d.old_status} → ${d.new_status}`,
  agent_action: (d) => {
    const r = d.result || {};
    const energy = typeof r.energy_delta === "number" && typeof r.energy === "number"
      ? `, energy ${num(r.energy - r.energy_delta)} → ${num(r.energy)}` : "";
    return `agent ${d.agent_id} ${d.action}${r.target ? ` ${r.target}` : ""}: ${r.status ?? "done"}${energy}`;
  },
  task_created: (d) => `task ${d.task_id} created: ${d.task_type}, priority ${d.priority}${d.agent_id ? `, for ${d.agent_id}` : ""}`,
  task_assigned: (d) => `task ${d.task_id} assigned to ${d.task?.agent_id ?? "an agent"}`,
  task_started: (d) => `task ${d.task_id} started`,
  task_completed: (d) => `task ${d.task_id} completed`,
  task_failed: (d) => `task ${d.task_id} failed${d.task?.error ? `: ${d.task.error}` : ""}`,
  task_cancelled: (d) => `task ${d.task_id} cancelled`,
  election_triggered: (d) => `election triggered for term ${d.term}`,
  leader_elected: (d) => (d.leader_id ? `leader ${d.leader_id} elected for term ${d.term}` : `no leader for term ${d.term} (no active agent)`),
  consensus_proposed: (d) => `proposal ${d.proposal_type} (${d.proposal_id}) opened: ${(d.eligible_voters || []).length} voters, threshold ${pct(d.threshold)}`,
  consensus_decided: (d) => `proposal ${d.proposal_id} ${d.decision}: ${d.votes_for} for, ${d.votes_against} against (${pct(d.approval_rate)})`,
  health_changed: (d) => `health ${d.previous_status ?? "?"} → ${d.status}`,
  metrics_updated: (d) => `metrics: ${d.connections} connections, ${num(d.events_per_s)} events/s, ${d.events_published} published`,
  alert_triggered: (d) => `${String(d.level).toUpperCase()} alert: ${d.message}`,
  error: (d) => `error ${d.code}: ${d.message}`,
  disconnected: (d) => `disconnected by the server: ${d.reason}${d.message ? ` (${d.message})` : ""}`,
};

export function summarize(name, data) {
  const make = SUMMARIES[name];
  if (make) {
    try {
      return make(data || {});
    } catch {
      // a field missing from an unexpected shape: fall back to the raw data
    }
  }
  const text = JSON.stringify(data ?? null);
  return `${name}: ${text.length > 160 ? `${text.slice(0, 157)}...` : text}`;
}

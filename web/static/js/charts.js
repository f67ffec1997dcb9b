// Charts of metrics_updated over time, drawn by uPlot (npm `uplot`, served under /vendor/).
const AGENT_STATUSES = ["active", "patrolling", "attacking", "resting", "inactive"];
const TASK_STATUSES = ["pending", "assigned", "running", "completed", "failed", "cancelled"];
const COLORS = ["#3fb950", "#58a6ff", "#f85149", "#d29922", "#8b949e", "#bc8cff"];

export function createCharts(uPlot, elements) {
  const width = () => Math.max(240, Math.min(elements.agents.parentElement.clientWidth - 8, 560));
  const make = (target, labels) => new uPlot({
    width: width(),
    height: 160,
    series: [{}, ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{ stroke: "#7d8a99", grid: { stroke: "#222c38" } }, { stroke: "#7d8a99", grid: { stroke: "#222c38" } }],
    legend: { show: true },
  }, [[], ...labels.map(() => [])], target);

  const charts = {
    agents: make(elements.agents, AGENT_STATUSES),
    tasks: make(elements.tasks, TASK_STATUSES),
    rate: make(elements.rate, ["events/s"]),
  };
  let drawn = null;

  return {
    update(points) {
      if (points === drawn) return; // unchanged since the last frame
      drawn = points;
      const t = points.map((p) => p.t);
      charts.agents.setData([t, ...AGENT_STATUSES.map((s) => points.map((p) => p.agents_by_status?.[s] ?? 0))]);
      charts.tasks.setData([t, ...TASK_STATUSES.map((s) => points.map((p) => p.tasks_by_status?.[s] ?? 0))]);
      charts.rate.setData([t, points.map((p) => p.events_per_s ?? 0)]);
    },
    resize() {
      for (const chart of Object.values(charts)) chart.setSize({ width: width(), height: 160 });
    },
  };
}

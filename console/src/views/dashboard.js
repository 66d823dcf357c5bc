// The dashboard: analytics figures as charts (uPlot) and the agent-dashboard lists.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { registerPage } from "../registry.js";

function DailyChart({ series, from, to }) {
  const target = useRef(null);
  useEffect(() => {
    // Every day of the range, zeros included: the series lists only days with figures.
    const byDay = new Map(series.map((d) => [d.day, d.metrics.messages?.count ?? 0]));
    const days = [];
    const counts = [];
    for (let at = Date.parse(`${from}T00:00:00Z`); at <= Date.parse(`${to}T00:00:00Z`); at += 86400000) {
      days.push(at / 1000);
      counts.push(byDay.get(new Date(at).toISOString().slice(0, 10)) ?? 0);
    }
    const chart = new uPlot(
      {
        width: Math.min(720, target.current.clientWidth || 720),
        height: 220,
        series: [{}, { label: t("messagesPerDay"), stroke: "#1f6feb", fill: "rgba(31,111,235,0.15)" }],
        axes: [{}, {}],
      },
      [days, counts],
      target.current,
    );
    return () => chart.destroy();
  }, [series, from, to]);
  return html`<figure><figcaption>${t("messagesPerDay")}</figcaption><div ref=${target} role="img" aria-label=${t("messagesPerDay")}></div></figure>`;
}

function StatusBars({ counts }) {
  const max = Math.max(1, ...Object.values(counts));
  return html`<figure><figcaption>${t("countsByStatus")}</figcaption>
    <ul class="bars">${Object.entries(counts).map(([status, n]) => html`<li data-status=${status}>
      <span class="label">${t(`status_${status}`)}</span><span class="bar" style=${`width:${(100 * n) / max}%`}></span><span>${n}</span></li>`)}</ul></figure>`;
}

function Dashboard() {
  const [board, setBoard] = useState(null);
  const [figures, setFigures] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api("GET", "/policies/agent-dashboard").then(setBoard, (e) => setError(e.message));
    api("GET", "/analytics/dashboard").then(setFigures, () => setFigures(null));
  }, []);
  if (error) return html`<p role="alert">${error}</p>`;
  if (!board) return html`<p aria-busy="true"></p>`;
  return html`<div class="dashboard">
    ${figures && html`<section><h2>${t("totals")}</h2><dl class="totals">
      ${Object.entries(figures.totals).filter(([, f]) => f.count > 0).map(([name, f]) => html`<div><dt>${t(`metric_${name}`)}</dt><dd>${f.amount ?? f.count}</dd></div>`)}
    </dl><${DailyChart} series=${figures.series} from=${figures.from} to=${figures.to} /></section>`}
    <section><${StatusBars} counts=${board.counts_by_status} /></section>
    <section aria-label=${t("dueSoon", { days: board.due_soon.days })}>
      <h2>${t("dueSoon", { days: board.due_soon.days })} (${board.due_soon.count}, ₹${board.due_soon.total_amount})</h2>
      <table class="due"><thead><tr><th>#</th><th>${t("customer")}</th><th>${t("premium")}</th><th>${t("nextDue")}</th></tr></thead>
        <tbody>${board.due_soon.items.map((p) => html`<tr><td>${p.policy_number}</td><td>${p.customer_name}</td><td>₹${p.premium_amount}</td><td>${p.next_due_date}</td></tr>`)}</tbody></table>
    </section>
    <section aria-label=${t("inGrace")}>
      <h2>${t("inGrace")} (${board.in_grace.length})</h2>
      <table class="grace"><thead><tr><th>#</th><th>${t("customer")}</th><th>${t("premium")}</th><th>${t("graceEnds")}</th></tr></thead>
        <tbody>${board.in_grace.map((p) => html`<tr><td>${p.policy_number}</td><td>${p.customer_name}</td><td>₹${p.premium_amount}</td><td>${p.grace_ends_on ?? "—"}</td></tr>`)}</tbody></table>
    </section>
  </div>`;
}

registerPage({
  path: "dashboard",
  label: "dashboard",
  roles: ["super_admin", "provider_admin", "senior_agent", "junior_agent"],
  render: () => html`<${Dashboard} />`,
});

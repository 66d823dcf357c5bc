// The customer panel beside the chat: details and policies from the REST API, and the status
// changes the lifecycle allows (the server names them; it also enforces the role).
import { useEffect, useState } from "preact/hooks";
import { api, session } from "../api.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { registerPanel, registry } from "../registry.js";

const MAY_CHANGE = new Set(["super_admin", "provider_admin", "senior_agent", "junior_agent"]);

function CustomerPanel({ customerId, conversationId }) {
  const [customer, setCustomer] = useState(null);
  const [policies, setPolicies] = useState([]);
  const [error, setError] = useState(null);
  const reload = () =>
    Promise.all([
      api("GET", `/customers/${customerId}`),
      api("GET", `/policies?customer_id=${customerId}&limit=50&sort=next_due_date`),
    ]).then(([c, page]) => {
      setCustomer(c);
      setPolicies(page.items);
    }, (err) => setError(err.message));
  useEffect(() => {
    reload();
  }, [customerId]);
  const mayChange = MAY_CHANGE.has(session.get().user.role);

  async function change(policy, status) {
    setError(null);
    try {
      await api("PATCH", `/policies/${policy.id}`, { status });
      await reload();
    } catch (err) {
      setError(err.message);
    }
  }

  if (!customer) return html`<section class="panel" aria-busy="true">${error && html`<p role="alert">${error}</p>`}</section>`;
  return html`<section class="panel customer" aria-label=${t("customer")}>
    <h3>${customer.full_name}</h3>
    <dl>
      <dt>${t("phone")}</dt><dd>${customer.phone}</dd>
      ${customer.email && html`<dt>${t("email")}</dt><dd>${customer.email}</dd>`}
      <dt>${t("language")}</dt><dd>${customer.preferred_language}</dd>
    </dl>
    <h4>${t("policies")}</h4>
    <ul class="policies">
      ${policies.map((p) => html`<li key=${p.id} data-policy=${p.policy_number}>
        <strong>${p.policy_number}</strong> ${p.plan_name}
        <span class="status status-${p.status}" data-status=${p.status}>${t(`status_${p.status}`)}</span>
        <div class="muted">${t("nextDue")}: ${p.next_due_date ?? "—"} · ${t("premium")}: ₹${p.premium_amount}</div>
        ${mayChange && p.allowed_transitions.length > 0 && html`<label>${t("changeStatus")}
          <select onChange=${(e) => e.target.value && change(p, e.target.value)} aria-label="${t("changeStatus")} ${p.policy_number}">
            <option value="">—</option>
            ${p.allowed_transitions.map((s) => html`<option value=${s}>${t(`status_${s}`)}</option>`)}
          </select></label>`}
        ${registry.policyMeta.map((meta) => meta(p, customer, conversationId))}
      </li>`)}
    </ul>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </section>`;
}

registerPanel({
  id: "customer",
  render: (row) => (row.customer_id ? html`<${CustomerPanel} key=${row.customer_id} customerId=${row.customer_id} conversationId=${row.id} />` : null),
});

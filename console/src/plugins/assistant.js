// The assistant in the console, as one module: the conversation's mode badge (assistant or
// agent), a "needs an agent" badge when it hands over, a label on its messages, and the
// hand-back button for staff. The mode comes from `mode` frames and from the system messages
// that record each change (meta.mode), so history shows it too.
import { api, session } from "../api.js";
import { chat } from "../chat.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { onFrame, registerBadge, registerMessageMeta, registerPanel } from "../registry.js";

const STAFF = new Set(["super_admin", "provider_admin", "senior_agent", "junior_agent"]);

function modeOf(store) {
  if (store.mode) return store.mode;
  // The latest recorded change among the messages held.
  let latest = null;
  for (const m of store.messages.values()) {
    if (m.meta?.mode && (!latest || m.seq > latest.seq)) latest = m;
  }
  return latest?.meta.mode ?? null;
}

onFrame("mode", (frame, hub) => {
  const store = hub.store(frame.conversation_id);
  store.mode = frame.mode;
  if (frame.mode === "bot") store.escalated = false;
});

onFrame("escalation", (frame, hub) => {
  hub.store(frame.conversation_id).escalated = true;
});

onFrame("message", (frame, hub) => {
  if (frame.meta?.mode) hub.store(frame.conversation_id).mode = frame.meta.mode;
});

registerBadge((row, store) => {
  const mode = modeOf(store);
  if (!mode) return null;
  const key = mode === "bot" ? "mode_assistant" : "mode_agent";
  return html`${store.escalated && html`<span class="badge needs-agent" data-escalated="true">${t("needsAgent")}</span>`}
    <span class="badge mode-${mode}" data-mode=${mode}>${t(key)}</span>`;
});

registerMessageMeta((message) =>
  message.sender_type === "bot" ? html`<span class="badge mode-bot">${t("mode_assistant")}</span>` : null,
);

function HandBack({ row }) {
  const store = chat.store(row.id);
  if (modeOf(store) !== "agent") return null;
  const giveBack = () => api("POST", `/conversations/${row.id}/handback`).catch(() => {});
  return html`<section class="panel assistant"><button type="button" onClick=${giveBack}>${t("handBack")}</button></section>`;
}

registerPanel({
  id: "assistant",
  render: (row) => (row.customer_id && STAFF.has(session.get().user.role) ? html`<${HandBack} row=${row} />` : null),
});

// WhatsApp in the console, as one module: the channel badge of a conversation, the delivery
// status of each message (the server's `status` frames: accepted, sent, delivered, read, failed),
// and what a reply refused outside Meta's 24-hour window means.
import { html } from "../html.js";
import { t } from "../i18n.js";
import { onFrame, registerBadge, registerMessageMeta, registerRefusal } from "../registry.js";

const ORDER = ["unknown", "accepted", "sent", "delivered", "read", "failed"];

onFrame("status", (frame, chat) => {
  const store = chat.store(frame.conversation_id);
  const known = store.statuses.get(frame.message_id);
  // Statuses only move forward, whatever order they arrive in.
  if (!known || ORDER.indexOf(frame.status) > ORDER.indexOf(known)) store.statuses.set(frame.message_id, frame.status);
});

registerBadge((row, store) => {
  const last = store.messages.get(store.lastSeq);
  const channel = last?.channel ?? "app";
  return html`<span class="badge channel-${channel}" data-channel=${channel}>${t(`channel_${channel}`)}</span>`;
});

registerMessageMeta((message, store) => {
  const status = store.statuses.get(message.message_id);
  if (message.channel !== "whatsapp" && !status) return null;
  return html`<span class="badge channel-whatsapp" data-wa-status=${status}>${t("channel_whatsapp")}${status ? ` · ${t(`wa_${status}`)}` : ""}</span>`;
});

// Free text is refused once the customer has not written on WhatsApp for 24 hours: say so, as
// the generic "not sent" would leave the agent trying again.
registerRefusal("outside_window", () => html`<span class="outside-window">${t("outsideWindow")}</span>`);

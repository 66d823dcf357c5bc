// Payments in the console, as one module: under each policy of the customer panel, the state of
// its latest premium payment, and for the policy's own agent a "Send payment link" button (the
// server makes the link and posts it into the customer's conversation). The payment saga writes
// into that conversation as it goes (the link, the receipt), so a new message there is when the
// state is asked for again; there are no payment frames on the socket.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, session } from "../api.js";
import { chat } from "../chat.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { registerPolicyMeta } from "../registry.js";
import { useSignals } from "../state.js";

// Links are sent by the policy's agent only (the server says so too: 403 for anyone else).
const AGENTS = new Set(["senior_agent", "junior_agent"]);
const PAYABLE = new Set(["active", "grace"]);
// States the saga leaves by itself, soon: asked again after a while, as a receipt's message can
// reach the chat a moment before the state that follows it is recorded.
const MOVING = new Set(["created", "authorised", "captured", "policy_credited"]);
const AGAIN_MS = 2000;

function latest(policyId) {
  return api("GET", `/payments?policy_id=${policyId}&limit=1`).then((page) => page.items[0] ?? null);
}

// The gateway is left to the server: the agency's Razorpay if it has one, else its Stripe.
function sendLink(policyId) {
  return api("POST", "/payments/links", { policy_id: policyId, send_to_conversation: true });
}

// Refused because the agency has no gateway set up: 422 naming `gateway`.
function noGateway(error) {
  return error instanceof ApiError && error.status === 422 && error.errors.some((e) => e.field === "gateway");
}

function PolicyPayment({ policy, conversationId }) {
  const store = chat.store(conversationId);
  useSignals(store);
  const [payment, setPayment] = useState(undefined); // undefined: not known yet
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState(null); // {error?: string, text?: string}
  const [tick, setTick] = useState(0);
  const lastSeq = store.lastSeq;
  useEffect(() => {
    let live = true;
    let timer = null;
    latest(policy.id).then((found) => {
      if (!live) return;
      setPayment(found);
      if (found && MOVING.has(found.status)) timer = setTimeout(() => setTick((n) => n + 1), AGAIN_MS);
    }, () => {});
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [policy.id, lastSeq, tick]);

  async function send() {
    setBusy(true);
    setNotice(null);
    try {
      await sendLink(policy.id);
      setPayment(await latest(policy.id));
      setNotice({ text: t("paymentLinkSent") });
    } catch (error) {
      setNotice({ error: noGateway(error) ? t("noGateway") : error.message || t("error") });
    } finally {
      setBusy(false);
    }
  }

  const mine = AGENTS.has(session.get().user.role) && policy.agent_id === session.get().user.id;
  const url = payment?.status === "order_placed" && /^https?:\/\//.test(payment.link_url ?? "") ? payment.link_url : null;
  return html`<div class="payment" data-payment-status=${payment?.status ?? "none"}>
    ${payment !== undefined && html`<span class="muted">${t("payment")}:</span> ${payment
      ? html`<span class="status payment-${payment.status}">${t(`payment_${payment.status}`)}</span> ₹${payment.amount}
        ${url && html` <a href=${url} target="_blank" rel="noopener noreferrer">${t("paymentLink")}</a>`}`
      : html`<span class="muted">${t("noPayments")}</span>`}`}
    ${mine && PAYABLE.has(policy.status) && html`<button type="button" disabled=${busy} onClick=${send}
      aria-label="${t("sendPaymentLink")} ${policy.policy_number}">${busy ? t("sendingPaymentLink") : t("sendPaymentLink")}</button>`}
    ${notice?.error && html`<p class="error" role="alert">${notice.error}</p>`}
    ${notice?.text && html`<p role="status">${notice.text}</p>`}
  </div>`;
}

registerPolicyMeta((policy, customer, conversationId) =>
  conversationId ? html`<${PolicyPayment} key=${`pay-${policy.id}`} policy=${policy} conversationId=${conversationId} />` : null,
);

// The inbox: the agent's conversations (newest activity first, unread counts, search by
// customer name or phone), the open conversation and the panels beside it.
import { useEffect, useState } from "preact/hooks";
import { api, session } from "../api.js";
import { chat, connection } from "../chat.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { registerPage, registry } from "../registry.js";
import { signal, useSignals } from "../state.js";
import { Conversation } from "./conversation.js";

export const inbox = signal([]);
const names = new Map(); // customer_id -> customer

async function customerOf(id) {
  if (!id) return null;
  if (!names.has(id)) names.set(id, api("GET", `/customers/${id}`).catch(() => null));
  return names.get(id);
}

async function load(q) {
  const page = await api("GET", `/conversations?limit=50${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  const rows = await Promise.all(
    page.items.map(async (row) => ({ ...row, customer: await customerOf(row.customer_id) })),
  );
  inbox.set(rows);
  for (const row of rows) chat.join(row.id, chat.store(row.id).lastSeq || row.last_seq);
}

export function conversationTitle(row) {
  return row?.customer?.full_name || row?.title || t("customer");
}

function Badges({ row }) {
  const store = chat.store(row.id);
  return registry.badges.map((badge) => badge(row, store));
}

function Inbox({ openId }) {
  useSignals(inbox);
  const [q, setQ] = useState("");
  useEffect(() => {
    const timer = setTimeout(() => load(q).catch(() => {}), q ? 250 : 0);
    return () => clearTimeout(timer);
  }, [q]);
  useEffect(() => {
    // Back from a drop: unread counts and new conversations are read again, and every 30 s,
    // since conversations opened by someone else are not joined yet.
    const again = () => load(q).catch(() => {});
    const off = connection.subscribe((state) => state === "connected" && again());
    const timer = setInterval(again, 30000);
    return () => {
      off();
      clearInterval(timer);
    };
  }, [q]);
  useEffect(
    () =>
      chat.onInbox((message) => {
        const rows = inbox.get();
        const row = rows.find((r) => r.id === message.conversation_id);
        if (!row) return load(q).catch(() => {});
        const mine = message.sender_id === session.get().user.id;
        const updated = {
          ...row,
          last_seq: Math.max(row.last_seq, message.seq),
          last_message_at: message.sent_at,
          unread: mine || row.id === openId ? 0 : row.unread + (message.seq > row.last_seq ? 1 : 0),
        };
        inbox.set([updated, ...rows.filter((r) => r !== row)]);
      }),
    [q, openId],
  );
  const rows = inbox.get();
  const row = rows.find((r) => r.id === openId);
  function keys(event) {
    // Arrow keys move between conversations, as in a mail client.
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const links = [...event.currentTarget.querySelectorAll("a")];
    const at = links.indexOf(document.activeElement);
    const next = links[Math.max(0, Math.min(links.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)))];
    next?.focus();
    event.preventDefault();
  }
  return html`<div class="inbox">
    <section class="list" aria-label=${t("inbox")}>
      <input type="search" placeholder=${t("search")} aria-label=${t("search")} value=${q}
        onInput=${(e) => setQ(e.target.value)} />
      ${rows.length === 0 && html`<p class="muted">${t("noConversations")}</p>`}
      <ul onKeyDown=${keys}>
        ${rows.map((r) => html`<li key=${r.id}>
          <a href="#/inbox/${r.id}" class="row ${r.id === openId ? "open" : ""}" data-conversation=${r.id}
            aria-current=${r.id === openId ? "true" : undefined}>
            <span class="name">${conversationTitle(r)}</span>
            <${Badges} row=${r} />
            ${r.unread > 0 && r.id !== openId && html`<span class="unread" aria-label=${t("unread", { n: r.unread })}>${r.unread}</span>`}
            <small class="muted">${r.customer?.phone ?? ""}</small>
          </a></li>`)}
      </ul>
    </section>
    ${row
      ? html`<${Conversation} key=${row.id} row=${row} onRead=${() => inbox.set(inbox.get().map((r) => (r.id === row.id ? { ...r, unread: 0 } : r)))} />
          <aside class="panels">${registry.panels.map((panel) => html`<div key=${panel.id}>${panel.render(row)}</div>`)}</aside>`
      : html`<p class="placeholder muted">${t("selectConversation")}</p>`}
  </div>`;
}

registerPage({ path: "inbox", label: "inbox", render: ([openId]) => html`<${Inbox} openId=${openId} />` });

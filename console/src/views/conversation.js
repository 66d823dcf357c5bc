// One conversation: history with infinite scroll backwards, live messages, typing, presence,
// read receipts, and sends shown at once and replaced by the stored message when acked.
import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import { api, session } from "../api.js";
import { chat } from "../chat.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { registry } from "../registry.js";
import { useSignals } from "../state.js";
import { conversationTitle } from "./inbox.js";

const PAGE = 30;

async function older(store) {
  if (store.complete || store.loading) return;
  store.loading = true;
  const before = store.oldestLoaded ? `&before_seq=${store.oldestLoaded}` : "";
  try {
    const items = await api("GET", `/conversations/${store.id}/messages?limit=${PAGE}${before}`);
    for (const item of items) store.add({ ...item, type: "message", conversation_id: store.id });
    if (items.length < PAGE) store.complete = true;
  } finally {
    store.loading = false;
    store.changed();
  }
}

/** Why a send was refused: a plugin's own words for its code, else the server's message. */
function refusal(item) {
  const explain = registry.refusals.get(item.code);
  return html`<span role="alert" data-code=${item.code}>${explain ? explain(item) : `${t("failed")}: ${item.failed}`}</span>`;
}

function when(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function Conversation({ row, onRead }) {
  const store = chat.store(row.id);
  useSignals(store);
  const me = session.get().user.id;
  const scroller = useRef(null);
  const lastTyping = useRef(0);
  const pinned = useRef(true);
  const height = useRef(0);

  useEffect(() => {
    // Live messages may be here already (the inbox joins every conversation): history still.
    if (!store.historyStarted) {
      store.historyStarted = true;
      older(store).catch(() => {});
    }
    chat.join(row.id, store.lastSeq || row.last_seq);
  }, [row.id]);

  const { stored, waiting } = store.timeline();
  const lastSeq = store.lastSeq;
  useEffect(() => {
    if (lastSeq > 0 && document.visibilityState === "visible") {
      chat.read(row.id, lastSeq);
      onRead();
    }
  }, [lastSeq]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (pinned.current) el.scrollTop = el.scrollHeight;
    else if (el.scrollHeight > height.current && el.scrollTop < 50) el.scrollTop += el.scrollHeight - height.current;
    height.current = el.scrollHeight;
  });

  function scrolled(event) {
    const el = event.currentTarget;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 40) older(store).catch(() => {});
  }

  function submit(event) {
    event.preventDefault();
    const input = event.target.elements.body;
    const body = input.value.trim();
    if (!body) return;
    pinned.current = true;
    chat.send(row.id, body);
    input.value = "";
  }

  function typed() {
    if (Date.now() - lastTyping.current > 3000) {
      lastTyping.current = Date.now();
      chat.typing(row.id);
    }
  }

  const others = [...store.typing.entries()].filter(([id, until]) => id !== me && until > Date.now());
  const othersOnline = row.member_ids.some((id) => id !== me && store.online.has(id));
  const readUpTo = Math.max(0, ...[...store.readBy.entries()].filter(([id]) => id !== me).map(([, seq]) => seq));
  const myLast = [...stored].reverse().find((m) => m.sender_id === me);

  return html`<section class="conversation" aria-label=${conversationTitle(row)}>
    <header>
      <h2>${conversationTitle(row)}</h2>
      ${registry.badges.map((badge) => badge(row, store))}
      <span class="presence" data-online=${othersOnline}>${othersOnline ? t("online") : t("offline")}</span>
    </header>
    <ol class="messages" ref=${scroller} onScroll=${scrolled} aria-live="polite" aria-relevant="additions" tabindex="0">
      ${!store.complete && html`<li class="older"><button type="button" onClick=${() => older(store)}>${t("olderMessages")}</button></li>`}
      ${stored.map((m) => html`<li key=${`s${m.seq}`} class="msg ${m.sender_id === me ? "mine" : "theirs"}" data-seq=${m.seq}
          data-client-id=${m.client_msg_id} data-state="stored">
        <span class="body">${m.body}</span>
        <small class="meta"><time datetime=${m.sent_at}>${when(m.sent_at)}</time>
          ${registry.messageMeta.map((meta) => meta(m, store))}
          ${m === myLast && readUpTo >= m.seq && html`<span class="read">${t("read")}</span>`}</small>
      </li>`)}
      ${waiting.map((p) => html`<li key=${`p${p.client_msg_id}`} class="msg mine pending" data-client-id=${p.client_msg_id}
          data-state=${p.failed ? "failed" : "pending"}>
        <span class="body">${p.body}</span>
        <small class="meta">${p.failed ? refusal(p) : t("sending")}</small>
      </li>`)}
    </ol>
    <p class="typing" aria-live="polite">${others.length > 0 ? t("typing") : ""}</p>
    <form class="compose" onSubmit=${submit}>
      <label class="sr-only" for="compose-body">${t("message")}</label>
      <textarea id="compose-body" name="body" rows="2" maxlength="4000" placeholder=${t("message")} onInput=${typed}
        onKeyDown=${(e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); e.currentTarget.form.requestSubmit(); } }}></textarea>
      <button type="submit">${t("send")}</button>
    </form>
  </section>`;
}

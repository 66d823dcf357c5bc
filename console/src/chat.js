// The chat over /ws: one socket, the conversations it has joined, and each conversation's
// messages. It recovers by itself: after any drop (network, 4008 too slow, a restart) it signs
// the socket in again, joins with the last seq it holds, and resends the sends not yet acked
// with their first client_msg_id, so nothing is lost and nothing is shown twice.
import { refreshTokens, session } from "./api.js";
import { registry } from "./registry.js";
import { signal } from "./state.js";

export const connection = signal("offline"); // "connected" | "reconnecting" | "offline"

// The server's availability codes: the message was not stored; the same client_msg_id again.
const RESEND_CODES = new Set(["not_stored", "actor_timeout", "unavailable", "overloaded"]);
const HEARTBEAT_MS = 10000;
const SILENCE_MS = 25000;

function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

/** One conversation's state: messages by seq, sends waiting for their ack, who is here. */
export class ConversationStore {
  constructor(id) {
    this.id = id;
    this.messages = new Map(); // seq -> message frame
    this.pending = new Map(); // client_msg_id -> {client_msg_id, body, failed}
    this.typing = new Map(); // user_id -> until (ms)
    this.online = new Set();
    this.readBy = new Map(); // user_id -> seq
    this.statuses = new Map(); // message_id -> delivery status (a channel's)
    this.oldestLoaded = null;
    // The seq the listing said it had reached: a rejoin starts there even before any message
    // is loaded, instead of asking for the whole history again.
    this.baseline = 0;
    this.complete = false; // history reaches seq 1
    this.listeners = new Set();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    for (const listener of [...this.listeners]) listener();
  }

  get lastSeq() {
    let last = this.baseline;
    for (const seq of this.messages.keys()) if (seq > last) last = seq;
    return last;
  }

  add(message) {
    const known = this.messages.get(message.seq);
    if (!known || known.fromAck) this.messages.set(message.seq, message);
    if (this.oldestLoaded === null || message.seq < this.oldestLoaded) this.oldestLoaded = message.seq;
    if (message.seq === 1) this.complete = true;
    const mine = session.get()?.user.id;
    if (message.sender_id === mine) this.pending.delete(message.client_msg_id);
  }

  /** Messages in seq order, then the sends still on their way (never one that is stored). */
  timeline() {
    const stored = [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    const acked = new Set(stored.map((m) => m.client_msg_id));
    const waiting = [...this.pending.values()].filter((p) => !acked.has(p.client_msg_id));
    return { stored, waiting };
  }
}

class Chat {
  constructor() {
    this.ws = null;
    this.stores = new Map();
    this.wanted = new Set();
    this.joined = new Set();
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.lastFrameAt = 0;
    this.userId = null;
    this.inboxListeners = new Set();
    window.addEventListener("offline", () => this.goOffline());
    window.addEventListener("online", () => this.connect());
  }

  store(id) {
    if (!this.stores.has(id)) this.stores.set(id, new ConversationStore(id));
    return this.stores.get(id);
  }

  onInbox(listener) {
    this.inboxListeners.add(listener);
    return () => this.inboxListeners.delete(listener);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.closeSocket();
    this.stores.clear();
    this.wanted.clear();
    connection.set("offline");
  }

  join(id, sinceSeq) {
    const store = this.store(id);
    if (sinceSeq) store.baseline = Math.max(store.baseline, sinceSeq);
    this.wanted.add(id);
    // Once per socket: the server then sends everything after since_seq, and live ones.
    if (this.authed && !this.joined.has(id)) {
      this.joined.add(id);
      this.sendFrame({ type: "join", conversation_id: id, since_seq: sinceSeq ?? store.lastSeq });
    }
  }

  send(id, body) {
    const store = this.store(id);
    const item = { client_msg_id: newId(), body, failed: null };
    store.pending.set(item.client_msg_id, item);
    store.changed();
    this.transmit(id, item);
  }

  transmit(id, item) {
    if (this.authed) {
      this.sendFrame({ type: "send", conversation_id: id, client_msg_id: item.client_msg_id, body: item.body });
    } // otherwise it goes out with the resends once the socket is back
  }

  typing(id) {
    if (this.authed) this.sendFrame({ type: "typing", conversation_id: id });
  }

  read(id, seq) {
    if (this.authed && seq > 0) this.sendFrame({ type: "read", conversation_id: id, seq });
  }

  sendFrame(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  connect() {
    if (this.stopped || !session.get()) return;
    if (!navigator.onLine) return this.goOffline();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timer);
    if (connection.get() !== "connected") connection.set("reconnecting");
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    this.ws = ws;
    this.authed = false;
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      ws.send(JSON.stringify({ type: "auth", token: session.get()?.access }));
    };
    ws.onmessage = (event) => {
      this.lastFrameAt = Date.now();
      this.receive(JSON.parse(event.data));
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.authed = false;
      clearInterval(this.heartbeat);
      if (event.code === 4401) {
        // The session ended or the token expired: refresh once, else back to sign-in.
        refreshTokens().then(() => this.schedule(), () => this.stop());
        return;
      }
      this.schedule();
    };
  }

  schedule() {
    if (this.stopped) return;
    if (!navigator.onLine) return this.goOffline();
    connection.set("reconnecting");
    const delay = Math.min(5000, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  goOffline() {
    clearTimeout(this.timer);
    this.closeSocket();
    if (!this.stopped) connection.set("offline");
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    clearInterval(this.heartbeat);
    if (ws) ws.close(1000);
  }

  receive(frame) {
    const store = frame.conversation_id ? this.store(frame.conversation_id) : null;
    switch (frame.type) {
      case "auth_ok":
        this.authed = true;
        this.attempt = 0;
        this.userId = frame.user_id;
        this.joined = new Set();
        connection.set("connected");
        this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
        for (const id of this.wanted) this.join(id);
        break;
      case "joined":
        store.online = new Set(frame.online);
        for (const item of store.pending.values()) this.transmit(store.id, item);
        break;
      case "message":
        store.add(frame);
        store.typing.delete(frame.sender_id); // their message is what they were typing
        for (const listener of this.inboxListeners) listener(frame);
        break;
      case "ack": {
        // Stand in for the message frame until it arrives (it may come first or second).
        const item = store.pending.get(frame.client_msg_id);
        if (item && !store.messages.has(frame.seq)) {
          store.add({
            ...frame, type: "message", body: item.body, sender_id: this.userId, sender_type: "user",
            channel: "app", sent_at: new Date().toISOString(), fromAck: true,
          });
        }
        store.pending.delete(frame.client_msg_id);
        break;
      }
      case "typing":
        store.typing.set(frame.user_id, Date.now() + 4000);
        setTimeout(() => store.changed(), 4100);
        break;
      case "presence":
        if (frame.status === "online") store.online.add(frame.user_id);
        else store.online.delete(frame.user_id);
        break;
      case "read":
        store.readBy.set(frame.user_id, Math.max(frame.seq, store.readBy.get(frame.user_id) ?? 0));
        break;
      case "error":
        this.refused(frame);
        break;
      default:
        break;
    }
    for (const handler of registry.frames.get(frame.type) ?? []) handler(frame, this);
    store?.changed();
  }

  refused(frame) {
    for (const store of this.stores.values()) {
      const item = store.pending.get(frame.ref);
      if (!item) continue;
      if (RESEND_CODES.has(frame.code)) {
        setTimeout(() => this.transmit(store.id, item), 300);
      } else {
        item.failed = frame.message || frame.code;
        item.code = frame.code; // a plugin may explain it (registry.refusals)
      }
      store.changed();
    }
  }

  beat() {
    if (Date.now() - this.lastFrameAt > SILENCE_MS) {
      // Nothing heard for too long: the connection is dead even if the socket does not know.
      const ws = this.ws;
      this.ws = null;
      ws?.close();
      this.authed = false;
      clearInterval(this.heartbeat);
      this.schedule();
      return;
    }
    this.sendFrame({ type: "ping" });
  }
}

export const chat = new Chat();

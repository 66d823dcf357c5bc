// Where a capability plugs into the console: a later feature (WhatsApp statuses, payments,
// imports, the assistant) adds one module under plugins/ that registers its pieces here, instead
// of edits all over the views.
export const registry = {
  pages: [], // {path, label, render, roles?, badge?} — the navigation bar, in order (badge: a component beside the label)
  panels: [], // {id, render(conversation, customer)} — beside the chat
  badges: [], // (conversation, store) => vnode | null — on inbox rows and the chat header
  messageMeta: [], // (message, store) => vnode | null — under a message
  policyMeta: [], // (policy, customer, conversationId) => vnode | null — under a policy in the customer panel
  refusals: new Map(), // a refused send's error code => (item) => vnode — instead of "not sent: …"
  frames: new Map(), // socket frame type => [handler(frame, chat)]
};

export function registerPage(page) {
  registry.pages.push(page);
}

export function registerPanel(panel) {
  registry.panels.push(panel);
}

export function registerBadge(render) {
  registry.badges.push(render);
}

export function registerMessageMeta(render) {
  registry.messageMeta.push(render);
}

export function onFrame(type, handler) {
  if (!registry.frames.has(type)) registry.frames.set(type, []);
  registry.frames.get(type).push(handler);
}

export function registerPolicyMeta(render) {
  registry.policyMeta.push(render);
}

export function registerRefusal(code, render) {
  registry.refusals.set(code, render);
}

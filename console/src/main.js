// The console's entry: sign-in gate, navigation from the registry, language switch, and the
// connection state always on screen.
import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { session, signOut } from "./api.js";
import { chat, connection } from "./chat.js";
import { html } from "./html.js";
import { LANGUAGES, language, setLanguage, t } from "./i18n.js";
import { registry } from "./registry.js";
import { useSignals } from "./state.js";
import "./views/inbox.js";
import "./views/dashboard.js";
import "./views/customer.js";
// Every capability's piece (src/plugins/*.js), found by the build.
import "virtual:plugins";
import { SignIn } from "./views/signin.js";

function useRoute() {
  const [hash, setHash] = useState(location.hash || "#/inbox");
  useEffect(() => {
    const update = () => setHash(location.hash || "#/inbox");
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return hash.slice(1).split("/").filter(Boolean);
}

function ConnectionState() {
  useSignals(connection, language);
  const state = connection.get();
  const label = { connected: t("connected"), reconnecting: t("reconnecting"), offline: t("offlineState") }[state];
  return html`<span class="conn conn-${state}" role="status" aria-live="polite" data-state=${state}>${label}</span>`;
}

function LanguageSwitch() {
  useSignals(language);
  return html`<label class="lang">${t("language")}
    <select value=${language.get()} onChange=${(e) => setLanguage(e.target.value)}>
      ${Object.entries(LANGUAGES).map(([code, name]) => html`<option value=${code}>${name}</option>`)}
    </select></label>`;
}

function Shell() {
  useSignals(language);
  const [page = "inbox", ...rest] = useRoute();
  const role = session.get().user.role;
  const pages = registry.pages.filter((p) => !p.roles || p.roles.includes(role));
  const current = pages.find((p) => p.path === page) ?? pages[0];
  useEffect(() => {
    chat.start();
    return () => chat.stop();
  }, []);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>${t("skip")}</a>
    <header class="top">
      <strong class="brand">${t("appName")}</strong>
      <nav aria-label="main">
        ${pages.map((p) => html`<a href="#/${p.path}" aria-current=${p === current ? "page" : undefined}>${t(p.label)}${p.badge && html`<${p.badge} />`}</a>`)}
      </nav>
      <${ConnectionState} />
      <${LanguageSwitch} />
      <span class="who">${session.get().user.first_name}</span>
      <button type="button" onClick=${() => signOut()}>${t("signOut")}</button>
    </header>
    <main id="main" tabindex="-1">${current.render(rest)}</main>`;
}

function App() {
  useSignals(session, language);
  return session.get() ? html`<${Shell} />` : html`<${SignIn} />`;
}

document.documentElement.lang = language.get();
render(html`<${App} />`, document.getElementById("app"));

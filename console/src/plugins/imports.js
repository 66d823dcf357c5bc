// Imports in the console, as one module: the Import page where staff upload a book (xlsx, xls,
// ods or csv), follow it live from the socket's `import_progress` frames, read its counts at the
// end and download the rows that failed (with an Error column: fix them and upload that file
// again); the recent imports below it.
import "./imports.css";
import { useEffect, useState } from "preact/hooks";
import { api, download, session } from "../api.js";
import { connection } from "../chat.js";
import { html } from "../html.js";
import { t } from "../i18n.js";
import { onFrame, registerPage } from "../registry.js";
import { signal, useSignals } from "../state.js";

const STAFF = ["super_admin", "provider_admin", "senior_agent", "junior_agent"];
const TYPES = ["customers_and_policies", "customers", "policies"];
const RUNNING = new Set(["queued", "parsing", "validating", "writing"]);
const COUNTS = ["processed", "created", "updated", "unchanged", "failed"];
const POLL_MS = 5000;

const imports = signal(new Map()); // id -> the API's ImportProgress, kept current by frames
// Another sign-in in this tab must not see the last one's imports.
session.subscribe((current) => current || imports.set(new Map()));

/** How far an import got: a finished one is past any running one, else the rows processed. */
function reach(item) {
  if (!item?.status) return -1;
  return RUNNING.has(item.status) ? item.processed ?? 0 : Infinity;
}

function put(...items) {
  const next = new Map(imports.get());
  for (const item of items) {
    const known = next.get(item.id);
    // A GET that answers after a newer frame must not move the import backwards.
    next.set(item.id, reach(item) >= reach(known) ? { ...known, ...item } : { ...item, ...known });
  }
  imports.set(next);
}

function fetchOne(id) {
  return api("GET", `/imports/${id}`).then(put, () => {});
}

// Imports that finished while nobody was looking (the agent offline, or on another page): the
// server keeps them as notices until they are marked seen; the navigation shows how many.
const unseen = signal(0);
let pageOpen = false;

function countUnseen() {
  return api("GET", "/imports?unseen=true&limit=1").then((page) => unseen.set(page.pagination.total), () => {});
}

async function markSeen() {
  const page = await api("GET", "/imports?unseen=true&limit=100");
  put(...page.items);
  await Promise.all(page.items.map((item) => api("POST", `/imports/${item.id}/seen`).catch(() => {})));
  await countUnseen();
}

session.subscribe((current) => (current ? countUnseen() : unseen.set(0)));

onFrame("import_progress", (frame) => {
  const { type, import_id: id, finished, ...progress } = frame;
  const known = imports.get().has(id);
  put({ id, ...progress });
  // The frame has the counts; the record has the rest (its name, error, unknown columns).
  if (finished || !known) fetchOne(id);
  if (finished) (pageOpen ? markSeen() : countUnseen()).catch(() => {});
});

function UnseenBadge() {
  useSignals(unseen);
  const count = unseen.get();
  return count > 0 ? html` <span class="badge" data-unseen=${count} aria-label=${t("importsUnseen", { n: count })}>${count}</span>` : null;
}

function describe(error) {
  const fields = (error.errors ?? []).filter((e) => e.field).map((e) => `${e.field}: ${e.message}`);
  return fields.length > 0 ? fields.join("; ") : error.message || t("error");
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function UploadForm() {
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState(null); // {error?: string, text?: string}

  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const file = form.elements.file.files[0];
    if (!file) return setNotice({ error: t("chooseFile") });
    const body = new FormData();
    body.append("import_type", form.elements.import_type.value);
    if (form.elements.force.checked) body.append("force", "true");
    body.append("file", file, file.name);
    setBusy(true);
    setNotice(null);
    try {
      const accepted = await api("POST", "/imports", body);
      await fetchOne(accepted.import_id);
      setNotice({ text: accepted.duplicate ? t("importDuplicate") : t("importQueued") });
      form.reset();
    } catch (error) {
      setNotice({ error: describe(error) });
    } finally {
      setBusy(false);
    }
  }

  return html`<form class="import-upload" onSubmit=${submit} aria-busy=${busy}>
    <h2>${t("importBook")}</h2>
    <p class="muted">${t("importHelp")}</p>
    <label>${t("importType")}
      <select name="import_type">${TYPES.map((type) => html`<option value=${type}>${t(`importType_${type}`)}</option>`)}</select>
    </label>
    <label>${t("importFile")}
      <input type="file" name="file" accept=".xlsx,.xls,.ods,.csv" />
    </label>
    <label class="inline"><input type="checkbox" name="force" /> ${t("importForce")}</label>
    <button type="submit" disabled=${busy}>${busy ? t("uploading") : t("upload")}</button>
    ${notice?.error && html`<p class="error" role="alert">${notice.error}</p>`}
    ${notice?.text && html`<p role="status">${notice.text}</p>`}
  </form>`;
}

function ImportItem({ item }) {
  const [error, setError] = useState(null);
  const running = RUNNING.has(item.status);
  const format = item.file_format === "csv" ? "csv" : "xlsx";
  const failedRows = () =>
    download(`/imports/${item.id}/errors?format=${format}`).then(
      (blob) => save(blob, `import-${item.id}-failed-rows.${format}`),
      (err) => setError(describe(err)),
    );
  return html`<li class="import" data-import=${item.id} data-status=${item.status}>
    <div><strong>${item.file_name ?? "…"}</strong>
      ${item.import_type && html` <span class="muted">${t(`importType_${item.import_type}`)}</span>`}
      <span class="status import-${item.status}">${t(`import_${item.status}`)}</span></div>
    ${running && html`<progress max=${item.total || 1} value=${item.total ? item.processed : undefined}
      aria-label=${t("importProgress", { name: item.file_name ?? "" })}></progress>`}
    <dl class="counts">${COUNTS.map((name) => html`<div data-count=${name}><dt>${t(`count_${name}`)}</dt><dd>${item[name] ?? 0}</dd></div>`)}
      ${item.total != null && html`<div data-count="total"><dt>${t("count_total")}</dt><dd>${item.total}</dd></div>`}</dl>
    ${item.error && html`<p class="error">${item.error}</p>`}
    ${item.unknown_columns?.length > 0 && html`<p class="muted">${t("unknownColumns")}: ${item.unknown_columns.join(", ")}</p>`}
    ${!running && item.failed > 0 && html`<button type="button" class="failed-rows" onClick=${failedRows}>${t("downloadFailedRows")}</button>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </li>`;
}

function ImportsPage() {
  useSignals(imports);
  const [error, setError] = useState(null);
  useEffect(() => {
    pageOpen = true;
    api("GET", "/imports?limit=20").then((page) => put(...page.items), (err) => setError(describe(err)));
    markSeen().catch(() => {});
    // Frames carry the progress; without a socket, the running imports are asked for instead.
    const timer = setInterval(() => {
      if (connection.get() === "connected") return;
      for (const item of imports.get().values()) if (RUNNING.has(item.status)) fetchOne(item.id);
    }, POLL_MS);
    return () => {
      pageOpen = false;
      clearInterval(timer);
    };
  }, []);
  const items = [...imports.get().values()].sort((a, b) => (b.created_at ?? "~").localeCompare(a.created_at ?? "~"));
  return html`<div class="imports">
    <${UploadForm} />
    <section aria-label=${t("recentImports")}>
      <h2>${t("recentImports")}</h2>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${items.length === 0 ? html`<p class="muted">${t("nothing")}</p>` : html`<ul class="import-list">${items.map((item) => html`<${ImportItem} key=${item.id} item=${item} />`)}</ul>`}
    </section>
  </div>`;
}

registerPage({ path: "imports", label: "imports", roles: STAFF, badge: UnseenBadge, render: () => html`<${ImportsPage} />` });

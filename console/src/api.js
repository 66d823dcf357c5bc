// The REST client: tokens live in memory only (a reload signs out), the refresh token rotates on
// every use, and a 401 is retried once after a refresh.
import { signal } from "./state.js";

export const session = signal(null); // {access, refresh, user} or null

export class ApiError extends Error {
  constructor(status, envelope) {
    super(envelope?.message || `HTTP ${status}`);
    this.status = status;
    this.errors = envelope?.errors || [];
  }
}

async function call(method, path, body, token, as = "json") {
  const headers = { Accept: as === "json" ? "application/json" : "*/*" };
  // A FormData body (an upload) sets its own multipart Content-Type with the boundary.
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined || form ? body : JSON.stringify(body),
  });
  if (response.ok && as === "blob") return response.blob();
  const envelope = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, envelope);
  return envelope?.data;
}

let refreshing = null;

/** Exchange the refresh token once, however many requests found the access token expired. */
export function refreshTokens() {
  const current = session.get();
  if (!current) return Promise.reject(new ApiError(401, null));
  refreshing ??= call("POST", "/auth/refresh", { refresh_token: current.refresh })
    .then((tokens) => {
      session.set({ ...session.get(), access: tokens.access_token, refresh: tokens.refresh_token });
    })
    .catch((error) => {
      session.set(null);
      throw error;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

export async function api(method, path, body, as = "json") {
  const current = session.get();
  try {
    return await call(method, path, body, current?.access, as);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401 || !current) throw error;
    await refreshTokens();
    return call(method, path, body, session.get()?.access, as);
  }
}

/** A file the API answers (an import's failed rows): a Blob, fetched with the session's token. */
export function download(path) {
  return api("GET", path, undefined, "blob");
}

async function start(tokens) {
  const me = await call("GET", "/users/me", undefined, tokens.access_token);
  session.set({ access: tokens.access_token, refresh: tokens.refresh_token, user: me });
}

/** Step one: tokens, or `{requires_mfa, mfa_token, channel}` for the code step. */
export async function signIn(identifier, password) {
  const data = await call("POST", "/auth/login", { identifier, password });
  if (data.requires_mfa) return data;
  await start(data);
  return null;
}

export async function verifyCode(mfaToken, code) {
  await start(await call("POST", "/auth/verify-otp", { mfa_token: mfaToken, otp_code: code }));
}

/** Back to sign-in at once, and the session revoked on the server: an access token that has
 * expired meanwhile is refreshed first (a logout it cannot authenticate revokes nothing). */
export async function signOut() {
  // A refresh on its way would rotate the refresh token held here: wait for it.
  await refreshing?.catch(() => {});
  const current = session.get();
  session.set(null);
  if (!current) return;
  try {
    await call("POST", "/auth/logout", undefined, current.access);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) return;
    const tokens = await call("POST", "/auth/refresh", { refresh_token: current.refresh }).catch(() => null);
    // No tokens: the session had ended already (revoked or expired), nothing left to revoke.
    if (tokens) await call("POST", "/auth/logout", undefined, tokens.access_token).catch(() => {});
  }
}

// Sign-in with the accounts API, including the one-time-code step when the account has MFA.
import { useState } from "preact/hooks";
import { signIn, verifyCode } from "../api.js";
import { html } from "../html.js";
import { t } from "../i18n.js";

export function SignIn() {
  const [challenge, setChallenge] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError(null);
    try {
      if (challenge) await verifyCode(challenge.mfa_token, form.get("code"));
      else setChallenge(await signIn(form.get("identifier"), form.get("password")));
    } catch (err) {
      setError(err.message || t("error"));
    } finally {
      setBusy(false);
    }
  }

  return html`<main class="signin">
    <h1>${t("appName")}</h1>
    <form onSubmit=${submit} aria-label=${t("signIn")}>
      ${challenge
        ? html`<p id="otp-help">${t("otpSent", { channel: challenge.channel })}</p>
            <label>${t("otpCode")}<input name="code" inputmode="numeric" autocomplete="one-time-code"
              pattern="[0-9]{6}" required autofocus aria-describedby="otp-help" /></label>
            <button type="submit" disabled=${busy}>${t("verify")}</button>`
        : html`<label>${t("identifier")}<input name="identifier" autocomplete="username" required autofocus /></label>
            <label>${t("password")}<input name="password" type="password" autocomplete="current-password" required /></label>
            <button type="submit" disabled=${busy}>${t("signIn")}</button>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

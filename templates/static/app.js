// Progressive enhancement only: every page works without this file.
// Shows "Copy" buttons for the recovery codes and copies them on click.
document.querySelectorAll("[data-copy]").forEach((button) => {
  const target = document.getElementById(button.dataset.copy);
  if (!target || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const text = [...target.querySelectorAll("code")].map((c) => c.textContent).join("\n");
    await navigator.clipboard.writeText(text);
    button.textContent = button.dataset.copied || "✓";
  });
});

// After a refused form, the first field in error takes the focus, so
// keyboard and screen-reader users land where the fix is; the message itself
// is announced by its aria-live region.
const firstInvalid = document.querySelector("[aria-invalid=true]");
if (firstInvalid) firstInvalid.focus();

// The language switcher applies a choice at once; its button is for
// browsers without this file.
document.querySelectorAll("[data-autosubmit]").forEach((select) => {
  const button = select.form.querySelector("[data-autosubmit-button]");
  if (button) button.hidden = true;
  select.addEventListener("change", () => select.form.submit());
});

// Passkeys (WebAuthn). The server sends options as JSON with base64url
// strings; the browser wants ArrayBuffers, and the answer goes back as JSON
// in a hidden field of an ordinary form.
const b64url = {
  decode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  },
  encode(buffer) {
    let text = "";
    new Uint8Array(buffer).forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

function creationOptions(options) {
  const o = options.publicKey;
  o.challenge = b64url.decode(o.challenge);
  o.user.id = b64url.decode(o.user.id);
  (o.excludeCredentials || []).forEach((c) => { c.id = b64url.decode(c.id); });
  return o;
}

function requestOptions(options) {
  const o = options.publicKey;
  o.challenge = b64url.decode(o.challenge);
  (o.allowCredentials || []).forEach((c) => { c.id = b64url.decode(c.id); });
  return o;
}

function credentialJSON(credential) {
  const r = credential.response;
  const response = { clientDataJSON: b64url.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64url.encode(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = b64url.encode(r.authenticatorData);
    response.signature = b64url.encode(r.signature);
    response.userHandle = r.userHandle ? b64url.encode(r.userHandle) : null;
  }
  return JSON.stringify({
    id: credential.id,
    rawId: b64url.encode(credential.rawId),
    type: credential.type,
    response,
    extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
  });
}

function showError(region, text) {
  if (!region) return;
  region.replaceChildren();
  const p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = text;
  region.appendChild(p);
}

async function postForm(url, fields) {
  const body = new URLSearchParams(fields);
  return fetch(url, { method: "POST", body, credentials: "same-origin" });
}

const webauthn = typeof window.PublicKeyCredential === "function" && navigator.credentials;
// The "needs JavaScript" notes are for browsers that do not run this file.
document.querySelectorAll("[data-passkey-nojs]").forEach((note) => { note.hidden = true; });

// Sign-in: a button, and autofill (conditional mediation) on the first step.
document.querySelectorAll("[data-passkey-signin]").forEach((box) => {
  const form = box.querySelector("[data-passkey-form]");
  const button = box.querySelector("[data-passkey-button]");
  const errors = document.getElementById("form-errors");
  if (!webauthn) {
    box.querySelector("[data-passkey-unsupported]").hidden = false;
    return;
  }
  button.hidden = false;
  box.querySelectorAll("[data-passkey-shown]").forEach((e) => { e.hidden = false; });
  const fields = { tx: form.elements.tx.value, csrf: form.elements.csrf.value };
  let pending = null;

  async function run(mediation) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    const answer = await postForm(box.dataset.options, fields);
    if (answer.status === 409) {
      if (mediation !== "conditional") window.location.reload();
      return;
    }
    if (!answer.ok) throw new Error("options");
    const publicKey = requestOptions(await answer.json());
    const request = { publicKey, signal: controller.signal };
    if (mediation) request.mediation = mediation;
    const credential = await navigator.credentials.get(request);
    if (!credential) return;
    form.elements.credential.value = credentialJSON(credential);
    form.submit();
  }

  button.addEventListener("click", () => {
    button.disabled = true;
    run(null).catch((err) => {
      if (err.name === "AbortError") return;
      showError(errors, err.name === "NotAllowedError" ? box.dataset.msgCancelled : box.dataset.msgFailed);
    }).finally(() => { button.disabled = false; });
  });

  if (box.dataset.autofill === "yes" && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
      if (available) run("conditional").catch(() => {});
    });
  }
});

// Security area: register a passkey.
document.querySelectorAll("[data-passkey-register]").forEach((form) => {
  const button = form.querySelector("[data-passkey-button]");
  const errors = form.querySelector("[data-passkey-errors]");
  if (!webauthn) {
    button.disabled = true;
    form.querySelector("[data-passkey-unsupported]").hidden = false;
    return;
  }
  form.addEventListener("submit", async (event) => {
    if (form.elements.credential.value) return;
    event.preventDefault();
    button.disabled = true;
    try {
      const answer = await postForm(form.dataset.options, { csrf: form.elements.csrf.value });
      const body = await answer.json();
      if (body.location) {
        window.location.assign(body.location);
        return;
      }
      if (!answer.ok) throw new Error("options");
      const credential = await navigator.credentials.create({ publicKey: creationOptions(body.options) });
      form.elements.ceremony.value = body.ceremony;
      form.elements.credential.value = credentialJSON(credential);
      form.submit();
    } catch (err) {
      const message = err.name === "InvalidStateError" ? form.dataset.msgDuplicate
        : err.name === "NotAllowedError" ? form.dataset.msgCancelled : form.dataset.msgFailed;
      showError(errors, message);
      button.disabled = false;
    }
  });
});

// The form-post authorization response: the form has a visible button for
// browsers without scripts; with them, it is sent at once.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());

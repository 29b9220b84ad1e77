// WebAuthn ceremonies of the flow pages (flow.html, macro webauthn_form).
//
// A form with `data-webauthn="create"` (setup) or `"get"` (validate) holds the options the server
// issued as JSON in a `<script type="application/json" data-webauthn-options>` block. Its button
// calls navigator.credentials.create() or .get(), the answer is written as JSON (binary fields
// base64url-encoded, as WebAuthn level 3's toJSON() does) into the hidden field and the form is
// posted. The server checks everything; this file only carries bytes. Served from /static/ so
// the pages keep their `default-src 'self'` Content-Security-Policy without inline scripts.
"use strict";

(function () {
  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (ch) => ch.charCodeAt(0));
  }

  function toText(buffer) {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) {
      binary += String.fromCharCode(byte);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map((item) => Object.assign({}, item, { id: toBytes(item.id) }));
  }

  function publicKey(ceremony, options) {
    const converted = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    if (ceremony === "create") {
      converted.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
      converted.excludeCredentials = descriptors(options.excludeCredentials);
    } else {
      converted.allowCredentials = descriptors(options.allowCredentials);
    }
    return converted;
  }

  function answer(credential) {
    const response = credential.response;
    const out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      if (response.getTransports) {
        out.response.transports = response.getTransports();
      }
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      if (response.userHandle) {
        out.response.userHandle = toText(response.userHandle);
      }
    }
    return out;
  }

  async function ceremony(form, button, error) {
    const kind = form.dataset.webauthn;
    const options = JSON.parse(form.querySelector("[data-webauthn-options]").textContent);
    button.disabled = true;
    error.hidden = true;
    try {
      if (!window.PublicKeyCredential || !options.challenge) {
        throw new Error("This browser cannot use passkeys here.");
      }
      const request = { publicKey: publicKey(kind, options) };
      const credential = await (kind === "create"
        ? navigator.credentials.create(request)
        : navigator.credentials.get(request));
      form.querySelector("[data-webauthn-answer]").value = JSON.stringify(answer(credential));
      form.submit();
    } catch (exc) {
      error.textContent =
        exc && exc.name === "NotAllowedError"
          ? "The request was cancelled or timed out; try again."
          : String((exc && exc.message) || exc);
      error.hidden = false;
      button.disabled = false;
    }
  }

  function bind(form) {
    if (form.dataset.webauthnBound) {
      return;
    }
    form.dataset.webauthnBound = "1";
    const button = form.querySelector("[data-webauthn-start]");
    const error = form.querySelector("[data-webauthn-error]");
    button.addEventListener("click", () => ceremony(form, button, error));
  }

  document.querySelectorAll("form[data-webauthn]").forEach(bind);
})();

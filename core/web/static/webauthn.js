// WebAuthn ceremonies of the flow pages (flow.html, macro webauthn_form).
//
// A form with `data-webauthn="create"` (setup) or `"get"` (validate) holds the options the server
// issued as JSON in a `<script type="application/json" data-webauthn-options>` block. Its button
// calls navigator.credentials.create() or .get(), the answer is written as JSON (binary fields
// base64url-encoded, as WebAuthn level 3's toJSON() does) into the hidden field and the form is
// posted. A "get" form with `data-webauthn-autofill="<input id>"` also offers its passkeys in
// that input's autofill on load (conditional mediation, where the browser supports it); the
// button and a post of the input's own form cancel that request first. The server checks
// everything; this file only carries bytes. Served from /static/ so the pages keep their
// `default-src 'self'` Content-Security-Policy without inline scripts.
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

  // A form's pending conditional (autofill) request: its AbortController and its settling.
  const autofills = new WeakMap();

  // Ask the browser with the form's options, write the answer into the form and post it: the
  // button's ceremony and the username field's autofill share this one path.
  async function ask(form, extra) {
    const kind = form.dataset.webauthn;
    const options = JSON.parse(form.querySelector("[data-webauthn-options]").textContent);
    if (!window.PublicKeyCredential || !options.challenge) {
      throw new Error("This browser cannot use passkeys here.");
    }
    const request = Object.assign({ publicKey: publicKey(kind, options) }, extra);
    const credential = await (kind === "create"
      ? navigator.credentials.create(request)
      : navigator.credentials.get(request));
    form.querySelector("[data-webauthn-answer]").value = JSON.stringify(answer(credential));
    form.submit();
  }

  // Cancel the form's autofill request and wait until the browser has let go of it, so that
  // the request that follows is never refused as "already pending".
  async function stopAutofill(form) {
    const running = autofills.get(form);
    if (running) {
      autofills.delete(form);
      running.controller.abort();
      await running.settled;
    }
  }

  async function ceremony(form, button, error) {
    form.dataset.webauthnClicked = "1"; // an autofill request not yet started never starts
    button.disabled = true;
    error.hidden = true;
    try {
      await stopAutofill(form);
      await ask(form, {});
    } catch (exc) {
      error.textContent =
        exc && exc.name === "NotAllowedError"
          ? "The request was cancelled or timed out; try again."
          : String((exc && exc.message) || exc);
      error.hidden = false;
      button.disabled = false;
    }
  }

  // Offer the passkeys in the username field's autofill (WebAuthn conditional mediation) when
  // the browser can; posting the username form cancels the offer.
  async function autofill(form) {
    const field = document.getElementById(form.dataset.webauthnAutofill || "");
    const api = window.PublicKeyCredential;
    if (!field || !api || !api.isConditionalMediationAvailable) {
      return;
    }
    const available = await api.isConditionalMediationAvailable().catch(() => false);
    if (!available || form.dataset.webauthnClicked) {
      return;
    }
    const controller = new AbortController();
    const settled = ask(form, { mediation: "conditional", signal: controller.signal }).catch(
      () => undefined // aborted or refused: the button and the username form still work
    );
    autofills.set(form, { controller, settled });
    if (field.form) {
      field.form.addEventListener("submit", () => stopAutofill(form));
    }
    await settled;
    if (autofills.get(form)?.controller === controller) {
      autofills.delete(form);
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
    if (form.dataset.webauthn === "get" && form.dataset.webauthnAutofill) {
      autofill(form);
    }
  }

  document.querySelectorAll("form[data-webauthn]").forEach(bind);
})();

// Passkeys: the one thing the pages cannot do without a script, as WebAuthn is a browser API.
// Each `form[data-passkey]` ("create" on /register, "get" in a reset or unlock), and the parts
// of the page marked `data-passkey-section` around it, stay hidden unless this browser has
// WebAuthn; every other method works without any script.
//
// On submit the form's fields (its csrf token, a passkey's name) are posted to the form's
// `data-passkey-options` URL, which answers the options as the server's WebAuthn library writes
// them ({"publicKey": {…}}, binary fields as base64url). The browser's ceremony runs with them,
// and its result, in the shape of `PublicKeyCredential.toJSON()`, goes into the form's hidden
// `credential` field; then the form is posted as any other. A cancelled or failed ceremony is
// told in the form's live region (`data-passkey-status`), and nothing is posted.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials || !window.fetch) {
    return;
  }

  function toBuffer(text) {
    var base64 = String(text).replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var copy = Object.assign({}, d);
      copy.id = toBuffer(d.id);
      return copy;
    });
  }

  // The server's JSON options as navigator.credentials takes them.
  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  // What `PublicKeyCredential.prototype.toJSON` gives, for browsers without it.
  function credentialJson(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults()
        : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      if (typeof response.getTransports === "function") {
        json.response.transports = response.getTransports();
      }
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = toText(response.userHandle);
    }
    return json;
  }

  function ceremony(kind, answer) {
    var json = answer && answer.publicKey;
    if (!json) {
      throw new Error("no options");
    }
    if (kind === "create") {
      return navigator.credentials.create({ publicKey: creationOptions(json) });
    }
    return navigator.credentials.get({ publicKey: requestOptions(json) });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var kind = form.getAttribute("data-passkey");
    var field = form.querySelector("input[name=credential]");
    var status = document.getElementById(form.getAttribute("data-passkey-status"));
    var button = form.querySelector("button[type=submit]");
    var busy = false;

    function say(text) {
      if (status) {
        status.textContent = text;
      }
    }

    function failed(error) {
      busy = false;
      if (button) {
        button.disabled = false;
      }
      // NotAllowedError is the browser's word for "cancelled or timed out"; it says no more.
      if (error && error.told) {
        say(error.told);
        return;
      }
      var key = error && error.name === "NotAllowedError" ? "cancelled" : "failed";
      say(form.getAttribute("data-passkey-" + key) || "");
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy || !field) {
        return;
      }
      busy = true;
      if (button) {
        button.disabled = true;
      }
      say("");
      var fields = new URLSearchParams(new FormData(form));
      fields.delete("credential");
      fetch(form.getAttribute("data-passkey-options"), {
        method: "POST",
        body: fields,
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          // A refusal says why in the page's language (`{"message"}`), e.g. a name too long.
          if (!response.ok) {
            return response.json().then(function (body) {
              var refused = new Error("options refused: " + response.status);
              refused.told = body && body.message;
              throw refused;
            });
          }
          return response.json();
        })
        .then(function (answer) {
          return ceremony(kind, answer);
        })
        .then(function (credential) {
          field.value = JSON.stringify(credentialJson(credential));
          // A plain submit: the page answers as to any other form.
          HTMLFormElement.prototype.submit.call(form);
        })
        .catch(failed);
    });

    // The form and every part of the page that only makes sense with it.
    form.hidden = false;
    for (var part = form.closest("[data-passkey-section]"); part; ) {
      part.hidden = false;
      part = part.parentElement && part.parentElement.closest("[data-passkey-section]");
    }
  });
})();

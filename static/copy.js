// The helpdesk's "Copy" button for the temporary password. The page works without it: the
// password is visible and selectable, and the button stays hidden unless this script runs.
"use strict";
document.querySelectorAll("[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  var done = document.getElementById(button.getAttribute("data-copied"));
  if (!field) {
    return;
  }
  field.addEventListener("focus", function () {
    field.select();
  });
  function copied() {
    if (done) {
      done.hidden = false;
    }
  }
  function fallback() {
    field.focus();
    field.select();
    // Deprecated but the only way without the async clipboard (plain http, older browsers).
    if (document.execCommand("copy")) {
      copied();
    }
  }
  button.addEventListener("click", function () {
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(field.value).then(copied, fallback);
    } else {
      fallback();
    }
  });
  button.hidden = false;
});

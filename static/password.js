// The password page's help while typing: a tick for each rule that can be judged here, a
// strength estimate, and a show-password button. The page works without it: the server checks
// every rule again and names the ones broken. Nothing typed leaves this page.
"use strict";
(function () {
  var field = document.getElementById("new-password");
  var confirm = document.getElementById("confirm-password");
  var rules = document.getElementById("password-rules");
  var strength = document.getElementById("password-strength");
  var reveal = document.getElementById("show-password");
  if (!field) {
    return;
  }

  // The character categories of AD's complexity rule that can be told apart here.
  function categories(text) {
    var found = 0;
    if (/[A-Z]/.test(text) || /\p{Lu}/u.test(text)) found += 1;
    if (/[a-z]/.test(text) || /\p{Ll}/u.test(text)) found += 1;
    if (/\p{Nd}/u.test(text)) found += 1;
    if (/[^\p{L}\p{Nd}\s]/u.test(text)) found += 1;
    // Letters without case (scripts such as Chinese or Arabic) are a category of their own.
    if (/[\p{Lo}]/u.test(text)) found += 1;
    return found;
  }

  function length(text) {
    return Array.from(text).length;
  }

  // Rules that depend on what only the server knows (names, the banned list, history, the
  // strength score) keep no mark: `undefined`.
  var checks = {
    length: function (text, n) { return length(text) >= n; },
    control: function (text) { return text.length > 0 && !/\p{Cc}/u.test(text); },
    complexity: function (text) { return categories(text) >= 3; }
  };

  function update() {
    var text = field.value;
    if (rules) {
      var met = rules.getAttribute("data-met");
      var unmet = rules.getAttribute("data-unmet");
      rules.querySelectorAll("li[data-rule]").forEach(function (item) {
        var check = checks[item.getAttribute("data-rule")];
        if (!check) {
          return;
        }
        var ok = check(text, parseInt(item.getAttribute("data-n") || "0", 10));
        item.classList.toggle("pass", ok);
        item.classList.toggle("fail", !ok && text.length > 0);
        var state = item.querySelector(".state");
        if (state) {
          state.textContent = ok ? met : unmet;
        }
      });
    }
    if (strength) {
      strength.hidden = text.length === 0;
      // A rough estimate from length and variety; the server's judgement is what counts.
      var score = length(text) + 2 * categories(text);
      var word = score >= 22 ? "strong" : score >= 15 ? "fair" : "weak";
      strength.className = "strength " + word;
      strength.textContent = strength.getAttribute("data-label") + " " +
        strength.getAttribute("data-" + word);
    }
  }

  field.addEventListener("input", update);
  if (field.value) {
    update();
  }

  if (reveal) {
    reveal.addEventListener("click", function () {
      var show = reveal.getAttribute("aria-pressed") !== "true";
      reveal.setAttribute("aria-pressed", show ? "true" : "false");
      [field, confirm].forEach(function (input) {
        if (input) {
          input.type = show ? "text" : "password";
        }
      });
    });
    // The fields go back to hidden before the form leaves, so no browser stores them as text.
    field.form.addEventListener("submit", function () {
      [field, confirm].forEach(function (input) {
        if (input) {
          input.type = "password";
        }
      });
    });
    reveal.hidden = false;
  }
})();

// The development pages behind the links in Latchkey's mails: the
// confirmation page POSTs the token to /api/auth/confirm, the reset page
// sends it with a new password to /api/auth/password/reset. Same origin,
// no dependencies, no inline script (the pages' Content-Security-Policy
// allows only this file).
"use strict";
(function () {
  var page = document.body.getAttribute("data-page");
  var form = document.getElementById("form");
  var status = document.getElementById("status");
  var submit = document.getElementById("submit");
  var token = new URLSearchParams(window.location.search).get("token") || "";
  // The token is a credential: keep it out of the address bar and history.
  window.history.replaceState(null, "", window.location.pathname);

  function say(text, state) {
    status.textContent = text;
    status.setAttribute("data-state", state);
  }

  if (!token) {
    say("This link has no token: open the link from the mail as it is.", "error");
    return;
  }
  form.hidden = false;
  say(page === "confirm" ? "Press the button to confirm your address." : "Choose your new password.", "ready");

  // post sends body as JSON and answers { status, body } (body is null
  // when there is none, as for 204).
  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    }).then(function (res) {
      return res.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return { status: res.status, body: parsed };
      });
    });
  }

  function failure(res) {
    var b = res.body || {};
    if (b.code === "INVALID_TOKEN") return "This link is invalid, expired or already used. Ask for a new mail.";
    if (b.code === "RATE_LIMITED") return "Too many attempts; try again later.";
    var text = b.message || "The request failed (HTTP " + res.status + ").";
    if (b.details && b.details.length) {
      text = b.details.map(function (d) { return d.field + ": " + d.message; }).join("; ");
    }
    return text;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;
    say("Sending…", "busy");
    var request;
    if (page === "confirm") {
      request = post("/api/auth/confirm", { token: token }).then(function (res) {
        if (res.status !== 200) return say(failure(res), "error");
        form.hidden = true;
        if (res.body && res.body.two_factor_required) {
          return say("Your email address is confirmed. Sign in with your second factor to continue.", "done");
        }
        say("Your email address is confirmed, and you are signed in.", "done");
      });
    } else {
      var password = document.getElementById("password").value;
      var conf = document.getElementById("password_conf").value;
      if (password !== conf) {
        submit.disabled = false;
        return say("The two passwords differ.", "error");
      }
      request = post("/api/auth/password/reset", { token: token, password: password, password_conf: conf }).then(function (res) {
        if (res.status !== 204) return say(failure(res), "error");
        form.hidden = true;
        say("Your password is changed, and every session was signed out: sign in with the new password.", "done");
      });
    }
    request.catch(function () {
      say("The service could not be reached; try again.", "error");
    }).then(function () {
      submit.disabled = false;
    });
  });
})();

// Session expiry warning. The server ends a session after SESSION_IDLE_TIMEOUT_SECONDS without
// a request (every request pushes the expiry forward; <body data-session-timeout>). This page
// keeps the same clock and, a minute before the end, shows a warning with "Stay signed in".
//
// The clock restarts on anything that reaches the server: this page's load, any same-origin
// fetch() (the case lease renewal, live updates: fetch is wrapped to notice them), "Stay signed
// in", and requests made by this user's other tabs (a timestamp shared through localStorage).
// Someone typing in the page is not idle: if there was keyboard or pointer input in the last
// two minutes when the warning is due, the session is extended quietly instead.
// When the clock runs out the warning says so and links to the login page; drafts of the
// decision and referral forms stay in this tab (static/js/drafts.js).
(function () {
  "use strict";
  const body = document.body;
  const timeout = Number(body.dataset.sessionTimeout) * 1000;
  if (!timeout) { return; }
  const keepAliveUrl = body.dataset.keepAliveUrl;
  const loginUrl = body.dataset.loginUrl;
  const SHARED = "safeguard.session.seen";  // a timestamp only, shared by this browser's tabs
  // A minute ahead; with very short timeouts (tests, demos) at least ten seconds after a load.
  const WARN_AHEAD = Math.min(60000, Math.max(timeout - 10000, timeout / 2));
  const MARGIN = 2000;  // the server set its expiry slightly before we heard back
  const PRESENCE = 120000;

  // The navigation started before the server handled this page: the conservative start. (A
  // faked clock, as in the browser tests, may report no usable origin: then "now".)
  const origin = performance.timeOrigin;
  let seen = Math.round(origin > 0 ? origin : Date.now());
  let input = 0;
  let state = "active";  // "active" | "warning" | "expired"
  let extending = false;
  let opener = null;

  function csrf() {
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function share(at) { try { window.localStorage.setItem(SHARED, String(at)); } catch (e) { /* private mode */ } }

  function touch(at) {
    seen = Math.max(seen, at || Date.now());
    share(seen);
    if (state !== "active") { setState("active"); }
  }

  // Notice every same-origin fetch: an answer is a request that reached the server, unless it
  // was sent on to the login page (the session had already ended).
  const nativeFetch = window.fetch.bind(window);
  window.fetch = function (resource, options) {
    return nativeFetch(resource, options).then(function (response) {
      let url = null;
      try { url = new URL(response.url, window.location.href); } catch (e) { url = null; }
      // Django saves the session (and so pushes its expiry) on every answer below 500.
      if (url && url.origin === window.location.origin && response.status < 500) {
        if (response.redirected && url.pathname === new URL(loginUrl, window.location.href).pathname) {
          setState("expired");
        } else {
          touch();
        }
      }
      return response;
    });
  };

  // --- the warning ------------------------------------------------------------------------
  const box = document.createElement("div");
  box.className = "session-warning";
  box.id = "session-warning";
  box.setAttribute("role", "alertdialog");
  box.setAttribute("aria-modal", "false");
  box.setAttribute("aria-labelledby", "session-warning-h");
  box.setAttribute("aria-describedby", "session-warning-text");
  box.hidden = true;
  const heading = document.createElement("h2");
  heading.id = "session-warning-h";
  const text = document.createElement("p");
  text.id = "session-warning-text";
  const actions = document.createElement("div");
  actions.className = "toolbar";
  const stay = document.createElement("button");
  stay.type = "button";
  stay.className = "primary";
  stay.textContent = "Stay signed in";
  const signIn = document.createElement("a");
  signIn.className = "button primary";
  signIn.textContent = "Sign in again";
  const problem = document.createElement("p");
  problem.className = "error";
  problem.hidden = true;
  actions.append(stay, signIn);
  box.append(heading, text, actions, problem);
  document.body.append(box);

  function minutes(ms) {
    const whole = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
  }

  function idleTime() {
    const mins = Math.round(timeout / 60000);
    return mins >= 2 ? mins + " minutes" : Math.round(timeout / 1000) + " seconds";
  }

  function show(focusTarget) {
    if (box.hidden) {
      opener = document.activeElement;
      box.hidden = false;
      focusTarget.focus();
    }
  }

  function hide() {
    if (box.hidden) { return; }
    const hadFocus = box.contains(document.activeElement);
    box.hidden = true;
    if (hadFocus && opener && opener.isConnected && opener.focus) { opener.focus(); }
    opener = null;
  }

  function setState(next) {
    if (next === state && next !== "warning") { return; }
    const before = state;
    state = next;
    problem.hidden = true;
    if (next === "active") { hide(); return; }
    if (next === "warning") {
      heading.textContent = "Your session is about to end";
      text.textContent = "You will be signed out in " + minutes(seen + timeout - MARGIN - Date.now()) +
        " after " + idleTime() + " without activity. Drafts of decision and referral forms are kept in this tab.";
      stay.hidden = false;
      signIn.hidden = true;
      if (before !== "warning") { show(stay); }
      return;
    }
    // expired
    heading.textContent = "Your session has ended";
    text.textContent = "You were signed out after " + idleTime() + " without activity. " +
      "Sign in again to continue; drafts of decision and referral forms are kept in this tab.";
    const here = window.location.pathname + window.location.search;
    signIn.href = loginUrl + "?" + new URLSearchParams({ next: here, expired: "1" }).toString();
    stay.hidden = true;
    signIn.hidden = false;
    if (!box.hidden) { box.hidden = true; }  // re-shown so the alert is announced again
    show(signIn);
    document.dispatchEvent(new CustomEvent("safeguard:session-expired"));
  }

  function extend() {
    if (extending) { return; }
    extending = true;
    fetch(keepAliveUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
    }).then(function (response) {
      if (state === "expired") { return; }  // the wrapper saw the login page
      if (!response.ok) {
        problem.textContent = "The session could not be extended (" + response.status + "). Save your work and reload the page.";
        problem.hidden = false;
      }
    }).catch(function () {
      problem.textContent = "The server could not be reached. Check your connection; your drafts are kept in this tab.";
      problem.hidden = false;
    }).finally(function () { extending = false; });
  }

  stay.addEventListener("click", extend);
  box.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && state === "warning") { event.stopPropagation(); hide(); }
  });

  // --- the clock ----------------------------------------------------------------------------
  ["keydown", "pointerdown", "input"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (!box.contains(event.target)) { input = Date.now(); }
    }, { capture: true, passive: true });
  });

  window.addEventListener("storage", function (event) {
    if (event.key === SHARED && Number(event.newValue) > seen) { touch(Number(event.newValue)); }
  });

  function check() {
    if (state === "expired") { return; }
    const left = seen + timeout - MARGIN - Date.now();
    if (left <= 0) { setState("expired"); return; }
    if (left > WARN_AHEAD) { if (state !== "active") { setState("active"); } return; }
    if (Date.now() - input < PRESENCE) { extend(); return; }
    if (state === "warning") {
      text.textContent = text.textContent.replace(/in \d+:\d\d/, "in " + minutes(left));
    } else {
      setState("warning");
    }
  }

  share(seen);
  window.setInterval(check, 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { check(); } });
})();

// Drafts of long forms (the decision and the referral), kept in this browser tab so that a
// session that ends mid-sentence loses nothing: form[data-draft-key] is saved on every edit and
// restored, with a "Draft restored" note and a way to discard it, when the form is shown again.
//
// Where: sessionStorage, not localStorage. It lives as long as the tab, which is the whole of
// the path that matters (submit → login page → two-factor → back on the case page, all in one
// tab), and it does not outlast the tab on a shared computer. Drafts are keyed by user; a
// different person signing in in the same tab drops the previous person's drafts, and logging
// out (form[data-drafts-clear]) drops them all.
// What: the text, choice and select fields a person fills in. Never files, hidden fields (CSRF
// token, claim time), passwords or one-time codes.
// When cleared: submitting marks the draft as sent but keeps it. The page the submission lands
// on decides: a success message on a page whose referrer is the form's page clears it; the
// form shown again (errors, or back after logging in) restores it; anything else (the login
// page) leaves it for later.
(function () {
  "use strict";
  const user = document.body.dataset.user;
  if (!user) { return; }
  const PREFIX = "safeguard.draft.";
  const MINE = PREFIX + user + ".";
  let store;
  try { store = window.sessionStorage; store.getItem(PREFIX); } catch (e) { return; }

  function keys(prefix) {
    const found = [];
    for (let i = 0; i < store.length; i += 1) {
      const key = store.key(i);
      if (key && key.startsWith(prefix)) { found.push(key); }
    }
    return found;
  }
  function read(key) { try { return JSON.parse(store.getItem(key)); } catch (e) { return null; } }
  function write(key, value) { try { store.setItem(key, JSON.stringify(value)); } catch (e) { /* full: no draft */ } }
  function here() { return window.location.pathname + window.location.search; }

  function referrerPage() {
    try {
      const url = new URL(document.referrer);
      return url.origin === window.location.origin ? url.pathname + url.search : null;
    } catch (e) { return null; }
  }

  function eligible(field) {
    if (!field.name || field.disabled || "draftSkip" in field.dataset) { return false; }
    const tag = field.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") { return true; }
    if (tag !== "INPUT") { return false; }
    const type = (field.type || "text").toLowerCase();
    if (["hidden", "password", "file", "submit", "button", "reset", "image"].includes(type)) { return false; }
    if ((field.autocomplete || "").includes("one-time-code") || /otp|token|password/i.test(field.name)) { return false; }
    return true;
  }

  function fields(form) { return Array.from(form.elements).filter(eligible); }

  // name → list of values, like FormData but only for the fields a draft may hold.
  function snapshot(form) {
    const data = {};
    fields(form).forEach(function (field) {
      const values = data[field.name] || (data[field.name] = []);
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked) { values.push(field.value); }
      } else if (field.tagName === "SELECT" && field.multiple) {
        Array.from(field.selectedOptions).forEach(function (option) { values.push(option.value); });
      } else {
        values.push(field.value);
      }
    });
    return data;
  }

  function apply(form, data) {
    const seen = {};
    fields(form).forEach(function (field) {
      if (!(field.name in data)) { return; }
      const values = data[field.name];
      if (field.type === "checkbox" || field.type === "radio") {
        field.checked = values.includes(field.value);
      } else if (field.tagName === "SELECT" && field.multiple) {
        Array.from(field.options).forEach(function (option) { option.selected = values.includes(option.value); });
      } else {
        const at = seen[field.name] || 0;
        seen[field.name] = at + 1;
        if (at < values.length) { field.value = values[at]; }
      }
    });
  }

  function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

  // 1. Another person signed in in this tab: their drafts are not this person's to see.
  keys(PREFIX).forEach(function (key) { if (!key.startsWith(MINE)) { store.removeItem(key); } });

  // 2. Sent drafts whose submission succeeded (this page is where it landed) are done.
  const succeeded = document.querySelector(".messages .msg-success") !== null;
  const from = referrerPage();
  keys(MINE).forEach(function (key) {
    const draft = read(key);
    if (!draft || (draft.sentFrom && succeeded && draft.sentFrom === from)) { store.removeItem(key); }
  });

  // 3. Each form with a draft key: restore what this tab kept, then keep every edit.
  document.querySelectorAll("form[data-draft-key]").forEach(function (form) {
    const key = MINE + form.dataset.draftKey;
    const initial = snapshot(form);
    let note = null;

    function save(sent) {
      const now = snapshot(form);
      if (same(now, initial)) { store.removeItem(key); return; }
      const draft = { fields: now, savedAt: new Date().toISOString(), page: here() };
      if (sent) { draft.sentFrom = here(); }
      write(key, draft);
    }

    function discard() {
      apply(form, initial);
      store.removeItem(key);
      if (note) { note.remove(); note = null; }
      const first = fields(form).find(function (field) { return field.type !== "radio" && field.type !== "checkbox"; });
      if (first) { first.focus(); }
    }

    const draft = read(key);
    if (draft && draft.fields) {
      if (!same(draft.fields, initial)) {
        apply(form, draft.fields);
        note = document.createElement("p");
        note.className = "draft-note";
        note.setAttribute("role", "status");
        const saved = (draft.savedAt || "").slice(11, 16);
        note.append("Draft restored from this browser tab" + (saved ? " (saved " + saved + " UTC)" : "") + ". ");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "linklike";
        button.textContent = "Discard draft";
        button.addEventListener("click", discard);
        note.append(button);
        form.prepend(note);
      }
      if (draft.sentFrom) { delete draft.sentFrom; write(key, draft); }
    }

    form.addEventListener("input", function () { save(false); });
    form.addEventListener("change", function () { save(false); });
    form.addEventListener("submit", function () { save(true); });
  });

  // 4. Logging out on purpose ends the drafts too.
  document.querySelectorAll("form[data-drafts-clear]").forEach(function (form) {
    form.addEventListener("submit", function () { keys(PREFIX).forEach(function (key) { store.removeItem(key); }); });
  });
})();

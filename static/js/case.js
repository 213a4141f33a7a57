// Case page: reveal media on demand (blurred, greyscale, muted), keyboard shortcuts, lease renewal.
// Revealed media live only in this page's DOM: navigating away (or Esc / "Hide again") re-hides.
(function () {
  "use strict";
  const root = document.getElementById("case-root");
  if (!root) { return; }
  const csrf = root.dataset.csrf;

  function applyFilters(stage) {
    const media = stage.querySelector("img, video");
    if (!media) { return; }
    const blur = stage.querySelector("[data-blur]").value;
    const grey = stage.querySelector("[data-grey]").checked;
    media.style.filter = "blur(" + blur + "px)" + (grey ? " grayscale(1)" : "");
  }

  function hide(box) {
    const stage = box.querySelector(".reveal-stage");
    stage.querySelector(".reveal-media").replaceChildren();
    stage.hidden = true;
    box.querySelector(".reveal-form").hidden = false;
  }

  document.querySelectorAll(".reveal-box").forEach(function (box) {
    const form = box.querySelector(".reveal-form");
    if (!form) { return; }
    const stage = box.querySelector(".reveal-stage");
    const error = box.querySelector(".reveal-error");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      const body = new URLSearchParams(new FormData(form));
      fetch(box.dataset.revealUrl, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (result) {
        if (!result.ok) { error.textContent = result.data.error || "Reveal refused."; error.hidden = false; return; }
        const data = result.data;
        let media;
        if (data.kind === "video") {
          media = document.createElement("video");
          media.muted = true; media.controls = true; media.preload = "metadata";
        } else {
          media = document.createElement("img");
          media.alt = "Revealed evidence (blurred and greyscale by default)";
        }
        media.src = data.url;
        stage.querySelector(".reveal-media").replaceChildren(media);
        stage.querySelector("[data-blur]").value = 24;
        stage.querySelector("[data-grey]").checked = true;
        applyFilters(stage);
        stage.hidden = false;
        form.hidden = true;
        form.reset();
        const counter = document.getElementById("reveals-today");
        if (counter) { counter.textContent = data.reveals_today; }
        if (data.needs_break) { document.getElementById("break-prompt").hidden = false; }
      }).catch(function () { error.textContent = "Network error; nothing was revealed."; error.hidden = false; });
    });
    stage.querySelector("[data-blur]").addEventListener("input", function () { applyFilters(stage); });
    stage.querySelector("[data-grey]").addEventListener("change", function () { applyFilters(stage); });
    stage.querySelector("[data-hide]").addEventListener("click", function () { hide(box); });
  });

  // Re-hide when the page is hidden or left (bfcache restores must not show media either).
  window.addEventListener("pagehide", function () { document.querySelectorAll(".reveal-box").forEach(hide); });

  // Keep the lease while the page is open.
  if (root.dataset.held === "1") {
    setInterval(function () {
      fetch(root.dataset.renewUrl, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          const lease = document.getElementById("lease");
          if (data.lease_expires_at && lease) { lease.textContent = data.lease_expires_at.slice(11, 16); }
          if (data.error) { window.alert(data.error); }
        }).catch(function () {});
    }, 60000);
  }

  const risk = document.getElementById("immediate-risk-form");
  if (risk) {
    risk.addEventListener("submit", function (event) {
      if (!window.confirm(risk.dataset.confirm)) { event.preventDefault(); }
    });
  }

  const help = document.getElementById("shortcuts");
  function toggleHelp(show) { help.hidden = !show; if (show) { help.querySelector("button").focus(); } }
  document.querySelectorAll("[data-help]").forEach(function (b) { b.addEventListener("click", function () { toggleHelp(true); }); });
  help.querySelector("[data-help-close]").addEventListener("click", function () { toggleHelp(false); });

  document.addEventListener("keydown", function (event) {
    const tag = (event.target.tagName || "").toLowerCase();
    if (event.key === "Escape") { toggleHelp(false); document.querySelectorAll(".reveal-box").forEach(hide); return; }
    if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "?") { toggleHelp(help.hidden); event.preventDefault(); }
    else if (event.key === "n") { document.getElementById("next-form").submit(); }
    else if (event.key === "r") { const reason = document.querySelector(".reveal-form:not([hidden]) input[name=reason]"); if (reason) { reason.focus(); event.preventDefault(); } }
    else if (event.key === "d") { const first = document.querySelector("[data-first-outcome]"); if (first) { first.focus(); event.preventDefault(); } }
    else if (event.key === "e") { const esc = document.querySelector("input[name=outcome][value=escalate]"); if (esc) { esc.checked = true; esc.focus(); document.getElementById("id_rationale").focus(); event.preventDefault(); } }
    else if (event.key === "u") { const release = document.getElementById("release-form"); if (release) { release.submit(); } }
  });
})();

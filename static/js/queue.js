// Queue page: "n" claims the next case; live per-priority counts refresh every 15 seconds.
(function () {
  "use strict";
  const help = document.getElementById("shortcuts");
  let opener = null;
  // The help is a modal dialog: opening it moves focus into it, Esc or Close shuts it and
  // gives focus back to where it was.
  function toggleHelp(show) {
    if (!help || help.hidden === !show) { return; }
    help.hidden = !show;
    if (show) { opener = document.activeElement; help.querySelector("[data-help-close]").focus(); }
    else if (opener && opener.focus) { opener.focus(); opener = null; }
  }
  if (help) { help.querySelector("[data-help-close]").addEventListener("click", function () { toggleHelp(false); }); }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { toggleHelp(false); return; }
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (help && !help.hidden) { if (event.key === "?") { toggleHelp(false); event.preventDefault(); } return; }
    if (event.key === "n") { document.getElementById("next-form").submit(); }
    if (event.key === "?") { toggleHelp(true); event.preventDefault(); }
  });
  const counts = document.querySelector("[data-counts-url]");
  if (!counts) { return; }
  setInterval(function () {
    fetch(counts.dataset.countsUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      Object.keys(data.by_priority).forEach(function (p) {
        const cell = counts.querySelector('[data-priority="' + p + '"]');
        if (cell) { cell.textContent = data.by_priority[p].total; }
      });
    }).catch(function () {});
  }, 15000);
})();

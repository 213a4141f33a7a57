// Queue page: "n" claims the next case; live per-priority counts refresh every 15 seconds.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "n") { document.getElementById("next-form").submit(); }
    if (event.key === "?") { const help = document.getElementById("shortcuts"); help.hidden = !help.hidden; }
  });
  const help = document.getElementById("shortcuts");
  if (help) { help.querySelector("[data-help-close]").addEventListener("click", function () { help.hidden = true; }); }
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

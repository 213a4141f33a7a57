// Poll running hash-list imports and move their progress bars (no framework, no CDN).
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("tr[data-import]"))
    .filter((row) => row.dataset.status === "pending" || row.dataset.status === "running");
  function update(row, data) {
    const bar = row.querySelector(".progress");
    bar.setAttribute("aria-valuenow", String(data.percent));
    bar.querySelector("span").style.width = data.percent + "%";
    row.querySelector('[data-field="counts"]').textContent = data.processed + "/" + data.total;
    row.querySelector('[data-field="added"]').textContent = data.added;
    row.querySelector('[data-field="updated"]').textContent = data.updated;
    row.querySelector('[data-field="status"]').textContent = data.status_display || data.status;
    const withdrawn = row.querySelector('[data-field="withdrawn"]');
    if (withdrawn && data.withdrawn !== undefined) { withdrawn.textContent = data.withdrawn; }
    const invalid = row.querySelector('[data-field="invalid"]');
    if (invalid && data.invalid !== undefined && !invalid.querySelector("details")) { invalid.textContent = data.invalid; }
    row.dataset.status = data.status;
  }
  function poll() {
    const pending = rows.filter((row) => row.dataset.status === "pending" || row.dataset.status === "running");
    if (!pending.length) { return; }
    Promise.all(pending.map((row) =>
      fetch(row.dataset.import, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => { if (data) { update(row, data); } })
        .catch(() => {})
    )).then(() => setTimeout(poll, 1000));
  }
  poll();
})();

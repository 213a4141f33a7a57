// Poll exchanges that are fetching and refresh their state and counts (no framework, no CDN).
(function () {
  "use strict";
  const boxes = Array.from(document.querySelectorAll("[data-exchange]"));
  function describe(fetch) {
    return fetch.records + " records: " + fetch.added + " added, " + fetch.updated + " updated, " +
      fetch.withdrawn + " withdrawn (" + fetch.pages + " pages)";
  }
  function update(box, data) {
    const state = box.querySelector('[data-field="state"]');
    if (state) { state.textContent = data.state_display; }
    const upTo = box.querySelector('[data-field="progress_at"]');
    if (upTo && data.progress_at) { upTo.textContent = data.progress_at.replace("T", " ").slice(0, 16); }
    const fetch = box.querySelector('[data-field="fetch"]');
    if (fetch && data.fetch) { fetch.textContent = describe(data.fetch); }
    box.dataset.state = data.state;
  }
  function poll() {
    Promise.all(boxes.map((box) =>
      fetch(box.dataset.exchange, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : null))
        .then((data) => { if (data) { update(box, data); } })
        .catch(() => {})
    )).then(() => {
      if (boxes.some((box) => box.dataset.state === "running" || box.dataset.state === "backoff")) {
        setTimeout(poll, 2000);
      }
    });
  }
  if (boxes.length) { poll(); }
})();

// While a packet builds, poll its status and move the progress bar; reload when it is done.
(function () {
  "use strict";
  const bar = document.getElementById("build-progress");
  if (!bar) { return; }
  function poll() {
    fetch(bar.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        bar.setAttribute("aria-valuenow", String(data.progress));
        bar.querySelector("span").style.width = data.progress + "%";
        document.getElementById("progress-label").textContent = data.progress;
        if (data.status !== "building" && data.status !== "running" && data.status !== "pending") { window.location.reload(); return; }
        setTimeout(poll, 700);
      }).catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 300);
})();

// Recovery codes: copy or download them, and continue only once "I have saved them" is ticked.
// Without JavaScript the codes and the Continue link still work.
(function () {
  "use strict";
  const list = document.getElementById("recovery-codes");
  if (!list) { return; }
  const codes = Array.prototype.map.call(list.querySelectorAll("li"), function (li) { return li.textContent.trim(); });
  const text = "Safeguard recovery codes (each works once)\n" + codes.join("\n") + "\n";
  const status = document.getElementById("codes-status");
  const saved = document.getElementById("codes-saved");
  const next = document.getElementById("codes-continue");
  document.getElementById("codes-tools").hidden = false;

  document.getElementById("codes-copy").addEventListener("click", function () {
    if (!navigator.clipboard) { status.textContent = "Copying is not available here: select the codes and copy them."; return; }
    navigator.clipboard.writeText(text).then(function () { status.textContent = "Copied."; },
      function () { status.textContent = "Could not copy: select the codes and copy them."; });
  });
  document.getElementById("codes-download").addEventListener("click", function (event) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = event.currentTarget.dataset.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    status.textContent = "Downloaded.";
  });

  function gate() {
    next.setAttribute("aria-disabled", saved.checked ? "false" : "true");
    next.classList.toggle("disabled", !saved.checked);
  }
  next.addEventListener("click", function (event) {
    if (!saved.checked) { event.preventDefault(); status.textContent = "Tick “I have saved these codes” first."; saved.focus(); }
  });
  saved.addEventListener("change", gate);
  gate();
})();

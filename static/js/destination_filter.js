// Filter the destination picker as the lead types (46 police forces plus national bodies).
// Options that don't match are hidden, never removed, so the form posts what is selected.
(function () {
  "use strict";
  const input = document.querySelector("[data-destination-filter]");
  const select = document.getElementById(input ? input.getAttribute("aria-controls") : "");
  if (!input || !select) return;
  function apply() {
    const needle = input.value.trim().toLowerCase();
    let firstMatch = null;
    for (const option of select.querySelectorAll("option")) {
      if (!option.value) continue;
      const match = !needle || option.textContent.toLowerCase().includes(needle);
      option.hidden = !match;
      if (match && !firstMatch) firstMatch = option;
    }
    const current = select.selectedOptions[0];
    if (needle && firstMatch && (!current || !current.value || current.hidden)) {
      select.value = firstMatch.value;
    }
  }
  input.addEventListener("input", apply);
  // Text typed before this deferred script ran (a slow connection), or restored by the
  // browser on going back, fired its input events with no listener: filter it now.
  if (input.value) apply();
})();

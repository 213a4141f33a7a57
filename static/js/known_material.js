// Known material: nothing is selected until the moderator selects it; "select all" ticks
// every row; submitting asks once more with the count and the outcome.
(function () {
  "use strict";
  const form = document.getElementById("bulk-form");
  if (!form) { return; }
  const boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=case]"));
  const all = document.getElementById("select-all");
  const count = document.getElementById("selected-count");
  function selected() { return boxes.filter(function (b) { return b.checked; }).length; }
  function update() {
    const n = selected();
    if (count) { count.textContent = n + " selected"; }
    if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
  }
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () { boxes.forEach(function (b) { b.checked = all.checked; }); update(); });
  }
  boxes.forEach(function (b) { b.addEventListener("change", update); });
  form.addEventListener("submit", function (event) {
    const outcome = form.querySelector("select[name=outcome]");
    const label = outcome ? outcome.options[outcome.selectedIndex].text : "";
    const message = form.dataset.confirm.replace("{count}", selected()).replace("{outcome}", label);
    if (selected() === 0) { event.preventDefault(); window.alert("Select at least one case."); return; }
    if (!window.confirm(message)) { event.preventDefault(); }
  });
  update();
})();

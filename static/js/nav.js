// The top bar's menu on narrow screens: below 48rem the nav, search and session fold behind a
// "Menu" button (aria-expanded). Without this script the button stays hidden and the menu simply
// wraps, so nothing depends on JavaScript; CSS decides the width at which the fold applies.
(() => {
  "use strict";
  const toggle = document.querySelector(".nav-toggle");
  const menu = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
  if (!toggle || !menu) return;

  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    menu.classList.toggle("open", open);
  };

  document.documentElement.classList.add("js-nav");
  toggle.hidden = false;
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("open") && menu.contains(document.activeElement)) {
      setOpen(false);
      toggle.focus();
    }
  });
})();

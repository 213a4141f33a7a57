// Live parts of a page (the escalations board, a lead's home): every [data-live-url] container
// is fetched again as an HTML fragment every data-live-interval seconds (10 by default, never
// less than 5) and swapped in without a reload. Rows marked data-live-urgent that were not on
// the page before are announced in the container's aria-live region (data-live-announce).
//
// Polling pauses while the tab is hidden and refreshes at once when it is shown again: each
// poll reaches the server and so keeps the session alive (the idle timeout counts requests), so
// a board forgotten in a background tab still times out. It stops for good when the session has
// ended (the fragment answers with the login page) and says so in data-live-status.
(function () {
  "use strict";
  const MIN_SECONDS = 5;

  function clock(date) { return date.toISOString().slice(11, 19) + " UTC"; }

  function urgentRows(container) {
    const rows = new Map();
    container.querySelectorAll("[data-live-urgent]").forEach(function (row) {
      rows.set(row.dataset.liveUrgent, row);
    });
    return rows;
  }

  // After a swap, focus goes back to the same link or button if it is still there.
  function focusKey(element) {
    if (!element || element === document.body) { return null; }
    if (element.id) { return "#" + CSS.escape(element.id); }
    const href = element.getAttribute && element.getAttribute("href");
    return href ? element.tagName.toLowerCase() + '[href="' + CSS.escape(href) + '"]' : null;
  }

  function start(container) {
    const seconds = Math.max(MIN_SECONDS, Number(container.dataset.liveInterval) || 10);
    const announcer = document.getElementById(container.dataset.liveAnnounce || "");
    const status = document.getElementById(container.dataset.liveStatus || "");
    let known = new Set(urgentRows(container).keys());
    let last = null;
    let timer = null;
    let busy = false;
    let stopped = false;

    function say(text) { if (status) { status.textContent = text; } }

    function stop(text) {
      stopped = true;
      window.clearTimeout(timer);
      say(text);
    }

    function schedule() {
      window.clearTimeout(timer);
      if (!stopped && !document.hidden) { timer = window.setTimeout(refresh, seconds * 1000); }
    }

    function swap(html) {
      if (html === last) { return; }
      last = html;
      const key = container.contains(document.activeElement) ? focusKey(document.activeElement) : null;
      container.innerHTML = html;  // our own server's template output; CSP runs no inline script
      if (key) {
        const again = container.querySelector(key);
        if (again) { again.focus(); }
      }
      const rows = urgentRows(container);
      const fresh = [];
      rows.forEach(function (row, id) {
        if (!known.has(id)) {
          row.classList.add("live-new");
          fresh.push(row.dataset.liveLabel || "New: a child at immediate risk.");
        }
      });
      known = new Set(rows.keys());
      if (fresh.length && announcer) {
        announcer.textContent = fresh.join(" ") + " (" + clock(new Date()) + ")";
      }
    }

    function refresh() {
      if (stopped || busy) { return; }
      busy = true;
      window.clearTimeout(timer);
      fetch(container.dataset.liveUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      }).then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          stop("Live updates stopped: your session has ended. Sign in again to see new escalations.");
          return null;
        }
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      }).then(function (html) {
        if (html === null) { return; }
        swap(html);
        say("Live: refreshes every " + seconds + " seconds; last updated " + clock(new Date()) + ".");
      }).catch(function () {
        say("Live update failed at " + clock(new Date()) + "; trying again in " + seconds + " seconds.");
      }).finally(function () {
        busy = false;
        schedule();
      });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { window.clearTimeout(timer); } else { refresh(); }
    });
    document.addEventListener("safeguard:session-expired", function () {
      stop("Live updates stopped: your session has ended. Sign in again to see new escalations.");
    });
    schedule();
  }

  document.querySelectorAll("[data-live-url]").forEach(start);
})();

// Case page: reveal media on demand (blurred, greyscale, muted), a video's contact sheet revealed
// frame by frame, keyboard shortcuts, lease renewal.
// Revealed media live only in this page's DOM: navigating away (or Esc / "Hide again") re-hides.
(function () {
  "use strict";
  const root = document.getElementById("case-root");
  if (!root) { return; }
  const csrf = root.dataset.csrf;

  // The media view answers 404 once the few minutes a reveal opens have passed.
  const EXPIRED = "The media could not be loaded: a reveal opens it for a few minutes only. Hide it and reveal again.";

  function filterFor(blur, grey) { return "blur(" + blur + "px)" + (grey ? " grayscale(1)" : ""); }

  // POST a reveal form; resolves to {ok, data} whatever the answer (a 404 page is not JSON).
  function postReveal(url, form) {
    return fetch(url, {
      method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    }).then(function (response) {
      if (!(response.headers.get("Content-Type") || "").includes("json")) {
        return { ok: false, data: { error: "Reveal refused (" + response.status + ")." } };
      }
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    });
  }

  function countReveal(data) {
    const counter = document.getElementById("reveals-today");
    if (counter) { counter.textContent = data.reveals_today; }
    if (data.needs_break) { document.getElementById("break-prompt").hidden = false; }
  }

  function applyFilters(stage) {
    const media = stage.querySelector("img, video");
    if (!media) { return; }
    media.style.filter = filterFor(stage.querySelector("[data-blur]").value, stage.querySelector("[data-grey]").checked);
  }

  function hide(box) {
    const stage = box.querySelector(".reveal-stage");
    if (!stage) { return; }
    const video = stage.querySelector("video");
    if (video) { video.pause(); video.removeAttribute("src"); video.load(); }
    stage.querySelector(".reveal-media").replaceChildren();
    stage.querySelectorAll("[data-player]").forEach(function (el) { el.remove(); });
    stage.hidden = true;
    box.querySelector(".reveal-form").hidden = false;
  }

  document.querySelectorAll(".reveal-box").forEach(function (box) {
    const form = box.querySelector(".reveal-form");
    if (!form) { return; }
    const stage = box.querySelector(".reveal-stage");
    const error = box.querySelector(".reveal-error");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      postReveal(box.dataset.revealUrl, form).then(function (result) {
        if (!result.ok) { error.textContent = result.data.error || "Reveal refused."; error.hidden = false; return; }
        const data = result.data;
        let media;
        if (data.kind === "video") {
          // The player exists only after this reveal: muted, paused, nothing fetched until play,
          // no download, picture-in-picture or casting (each would outlive "Hide again"). No
          // native controls: they sit under the blur, and their fullscreen and volume would get
          // round it; addPlayerControls puts plain ones outside the filtered element.
          media = document.createElement("video");
          media.muted = true; media.defaultMuted = true; media.autoplay = false; media.controls = false; media.preload = "none";
          media.disablePictureInPicture = true; media.disableRemotePlayback = true;
          media.setAttribute("controlslist", "nodownload noplaybackrate noremoteplayback");
          media.setAttribute("aria-label", "Revealed video (muted, blurred and greyscale by default)");
          // Nothing is preloaded, so the player cannot know its size: give it the file's shape.
          if (box.dataset.width) { media.style.aspectRatio = box.dataset.width + " / " + box.dataset.height; }
        } else {
          media = document.createElement("img");
          media.alt = "Revealed evidence (blurred and greyscale by default)";
        }
        media.addEventListener("error", function () { if (media.isConnected) { error.textContent = EXPIRED; error.hidden = false; } });
        media.src = data.url;
        stage.querySelector(".reveal-media").replaceChildren(media);
        if (data.kind === "video") { addPlayerControls(stage, media); }
        stage.querySelector("[data-blur]").value = 24;
        stage.querySelector("[data-grey]").checked = true;
        applyFilters(stage);
        stage.hidden = false;
        form.hidden = true;
        form.reset();
        // The form that had focus is hidden now: keep the keyboard on the revealed media.
        (stage.querySelector("[data-player] button") || stage.querySelector("[data-blur]")).focus();
        countReveal(data);
      }).catch(function () { error.textContent = "Network error; nothing was revealed."; error.hidden = false; });
    });
    stage.querySelector("[data-blur]").addEventListener("input", function () { applyFilters(stage); });
    stage.querySelector("[data-grey]").addEventListener("change", function () { applyFilters(stage); });
    stage.querySelector("[data-hide]").addEventListener("click", function () { hide(box); });
  });

  // The blur and greyscale filters would blur a video's own controls too, so a revealed video
  // gets plain controls outside the filtered element: play/pause, a position slider and sound
  // (off until asked for: the reveal was for the picture).
  function clock(seconds) {
    const whole = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
  }

  function addPlayerControls(stage, video) {
    const bar = document.createElement("div");
    bar.className = "toolbar player-controls";
    bar.dataset.player = "";
    const play = document.createElement("button");
    play.type = "button"; play.textContent = "Play";
    const seek = document.createElement("input");
    seek.type = "range"; seek.min = "0"; seek.max = "0"; seek.step = "0.1"; seek.value = "0";
    seek.setAttribute("aria-label", "Position in the video");
    const time = document.createElement("span");
    time.className = "muted"; time.textContent = "0:00";
    play.addEventListener("click", function () { if (video.paused) { video.play().catch(function () {}); } else { video.pause(); } });
    video.addEventListener("play", function () { play.textContent = "Pause"; });
    video.addEventListener("pause", function () { play.textContent = "Play"; });
    video.addEventListener("loadedmetadata", function () { seek.max = String(video.duration || 0); });
    video.addEventListener("timeupdate", function () {
      seek.value = String(video.currentTime);
      time.textContent = clock(video.currentTime) + " / " + clock(video.duration);
    });
    seek.addEventListener("input", function () { video.currentTime = Number(seek.value); });
    const sound = document.createElement("button");
    sound.type = "button"; sound.textContent = "Sound"; sound.setAttribute("aria-pressed", "false");
    sound.addEventListener("click", function () {
      video.muted = !video.muted;
      sound.setAttribute("aria-pressed", String(!video.muted));
    });
    bar.append(play, seek, time, sound);
    stage.querySelector(".reveal-media").after(bar);
  }

  // Contact sheets: one hidden placeholder per frame, each revealed on its own with a reason
  // (a reveal counted like any other). One frame of a sheet is in the tab order at a time;
  // arrows and j/k move between frames, Enter on a hidden frame asks for its reason.
  function sheetOf(el) { return el.closest(".contact-sheet"); }

  function applySheetFilters(sheet) {
    const controls = sheet.querySelector(".sheet-controls");
    if (!controls) { return; }
    const filter = filterFor(controls.querySelector("[data-blur]").value, controls.querySelector("[data-grey]").checked);
    sheet.querySelectorAll(".sheet-thumb img").forEach(function (img) { img.style.filter = filter; });
  }

  function closeFrameForm(tile) {
    const form = tile.querySelector(".sheet-form");
    if (!form || form.hidden) { return; }
    form.hidden = true;
    form.reset();
    tile.querySelector(".sheet-thumb").setAttribute("aria-expanded", "false");
  }

  function hideFrame(tile) {
    const thumb = tile.querySelector(".sheet-thumb");
    const img = thumb.querySelector("img");
    if (img) { img.removeAttribute("src"); img.remove(); }
    tile.dataset.hidden = "";
    thumb.setAttribute("aria-label", "Frame at " + tile.dataset.time + ", hidden");
    closeFrameForm(tile);
  }

  function hideSheet(sheet) {
    sheet.querySelectorAll(".sheet-frame").forEach(hideFrame);
    const controls = sheet.querySelector(".sheet-controls");
    if (controls) { controls.hidden = true; }
  }

  function focusThumb(thumb) {
    if (!thumb) { return; }
    sheetOf(thumb).querySelectorAll(".sheet-thumb").forEach(function (t) { t.tabIndex = t === thumb ? 0 : -1; });
    thumb.focus();
    thumb.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function openFrameForm(tile) {
    const form = tile.querySelector(".sheet-form");
    if (!form || !("hidden" in tile.dataset)) { return false; }
    sheetOf(tile).querySelectorAll(".sheet-frame").forEach(function (other) { if (other !== tile) { closeFrameForm(other); } });
    form.hidden = false;
    tile.querySelector(".sheet-thumb").setAttribute("aria-expanded", "true");
    form.querySelector("input[name=reason]").focus();
    return true;
  }

  document.querySelectorAll(".contact-sheet").forEach(function (sheet) {
    const error = sheet.querySelector(".reveal-error");
    const controls = sheet.querySelector(".sheet-controls");
    const thumbs = Array.from(sheet.querySelectorAll(".sheet-thumb"));

    sheet.querySelectorAll(".sheet-frame").forEach(function (tile) {
      const thumb = tile.querySelector(".sheet-thumb");
      thumb.addEventListener("click", function () { focusThumb(thumb); openFrameForm(tile); });
      const form = tile.querySelector(".sheet-form");
      if (!form) { return; }
      form.addEventListener("keydown", function (event) {
        if (event.key === "Escape") { closeFrameForm(tile); focusThumb(thumb); event.stopPropagation(); }
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        error.hidden = true;
        postReveal(sheet.dataset.revealUrl, form).then(function (result) {
          if (!result.ok) { error.textContent = result.data.error || "Reveal refused."; error.hidden = false; return; }
          if (controls && controls.hidden) {
            controls.querySelector("[data-blur]").value = 24;
            controls.querySelector("[data-grey]").checked = true;
            controls.hidden = false;
          }
          // Filtered before it has a source: the frame is never painted sharp or in colour.
          const img = document.createElement("img");
          img.alt = "";
          thumb.prepend(img);
          applySheetFilters(sheet);
          img.addEventListener("error", function () { if (img.isConnected) { error.textContent = EXPIRED; error.hidden = false; } });
          img.src = result.data.url;
          delete tile.dataset.hidden;
          thumb.setAttribute("aria-label", "Frame at " + tile.dataset.time + ", revealed (blurred and greyscale by default)");
          closeFrameForm(tile);
          focusThumb(thumb);
          countReveal(result.data);
        }).catch(function () { error.textContent = "Network error; nothing was revealed."; error.hidden = false; });
      });
    });

    sheet.querySelector(".sheet-grid").addEventListener("keydown", function (event) {
      const thumb = event.target.closest(".sheet-thumb");
      if (!thumb || event.ctrlKey || event.metaKey || event.altKey) { return; }
      const at = thumbs.indexOf(thumb);
      let to = null;
      if (event.key === "ArrowLeft" || event.key === "j") { to = Math.max(0, at - 1); }
      else if (event.key === "ArrowRight" || event.key === "k") { to = Math.min(thumbs.length - 1, at + 1); }
      else if (event.key === "Home") { to = 0; }
      else if (event.key === "End") { to = thumbs.length - 1; }
      if (to === null) { return; }
      event.preventDefault();
      focusThumb(thumbs[to]);
    });

    if (controls) {
      controls.querySelector("[data-blur]").addEventListener("input", function () { applySheetFilters(sheet); });
      controls.querySelector("[data-grey]").addEventListener("change", function () { applySheetFilters(sheet); });
      controls.querySelector("[data-hide]").addEventListener("click", function () { hideSheet(sheet); focusThumb(thumbs[0]); });
    }
  });

  // A matched segment on the timeline leads to the contact-sheet frame that shows it.
  document.querySelectorAll(".timeline-span[data-frame-target]").forEach(function (span) {
    span.addEventListener("click", function () { focusThumb(document.getElementById(span.dataset.frameTarget)); });
  });

  function hideAll() {
    document.querySelectorAll(".reveal-box").forEach(hide);
    document.querySelectorAll(".contact-sheet").forEach(hideSheet);
  }

  // Re-hide when the page is hidden or left (bfcache restores must not show media either).
  window.addEventListener("pagehide", hideAll);

  // Keep the lease while the page is open.
  if (root.dataset.held === "1") {
    setInterval(function () {
      fetch(root.dataset.renewUrl, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          const lease = document.getElementById("lease");
          if (data.lease_expires_at && lease) { lease.textContent = data.lease_expires_at.slice(11, 16); }
          if (data.error) { window.alert(data.error); }
        }).catch(function () {});
    }, 60000);
  }

  const risk = document.getElementById("immediate-risk-form");
  if (risk) {
    risk.addEventListener("submit", function (event) {
      if (!window.confirm(risk.dataset.confirm)) { event.preventDefault(); }
    });
  }

  const help = document.getElementById("shortcuts");
  let helpOpener = null;
  // A modal dialog: focus moves into it on open and goes back to where it was on close.
  function toggleHelp(show) {
    if (help.hidden === !show) { return; }
    help.hidden = !show;
    if (show) { helpOpener = document.activeElement; help.querySelector("[data-help-close]").focus(); }
    else if (helpOpener && helpOpener.focus) { helpOpener.focus(); helpOpener = null; }
  }
  document.querySelectorAll("[data-help]").forEach(function (b) { b.addEventListener("click", function () { toggleHelp(true); }); });
  help.querySelector("[data-help-close]").addEventListener("click", function () { toggleHelp(false); });

  document.addEventListener("keydown", function (event) {
    const tag = (event.target.tagName || "").toLowerCase();
    if (event.key === "Escape") { toggleHelp(false); hideAll(); return; }
    if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "?") { toggleHelp(help.hidden); event.preventDefault(); }
    else if (event.key === "n") { document.getElementById("next-form").submit(); }
    else if (event.key === "r") {
      // The first hidden media: a reveal form's reason, or a video's contact sheet (its first hidden frame).
      const target = document.querySelector(".reveal-form:not([hidden]) input[name=reason], .sheet-frame[data-hidden]");
      if (target && target.classList.contains("sheet-frame")) { focusThumb(target.querySelector(".sheet-thumb")); openFrameForm(target); event.preventDefault(); }
      else if (target) { target.focus(); event.preventDefault(); }
    }
    else if (event.key === "d") { const first = document.querySelector("[data-first-outcome]"); if (first) { first.focus(); event.preventDefault(); } }
    else if (event.key === "e") { const esc = document.querySelector("input[name=outcome][value=escalate]"); if (esc) { esc.checked = true; esc.focus(); document.getElementById("id_rationale").focus(); event.preventDefault(); } }
    else if (event.key === "u") { const release = document.getElementById("release-form"); if (release) { release.submit(); } }
  });
})();

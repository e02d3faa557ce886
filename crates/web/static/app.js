// Live parts of the Denwa panel: elements with data-live="URL" reload that HTML fragment every
// two seconds; elements that also have data-stream="URL" are pushed their HTML by the server
// instead (server-sent `members` events) and poll only when no stream can be had (the server's
// cap on open streams, an old browser). Everything works without this script; the pages are
// just not refreshed.
"use strict";

function poll(el) {
  const src = el.getAttribute("data-live");
  let busy = false;
  setInterval(async () => {
    // Not while someone types or picks in it (a transfer form, a select): that would wipe it.
    if (busy || document.hidden || el.contains(document.activeElement)) return;
    busy = true;
    try {
      const r = await fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      // A redirect means the session ended: show the sign-in page instead of embedding it.
      if (r.redirected) { location.reload(); return; }
      if (r.ok) el.innerHTML = await r.text();
    } catch (_) {
      // Server restarting: try again on the next tick.
    } finally {
      busy = false;
    }
  }, 2000);
}

function stream(el) {
  const es = new EventSource(el.getAttribute("data-stream"));
  let pending = null;
  // Not while a button or field in it has the focus: applied when it leaves.
  const show = () => {
    if (pending === null || el.contains(document.activeElement)) return;
    el.innerHTML = pending;
    pending = null;
  };
  es.addEventListener("members", (e) => { pending = e.data; show(); });
  el.addEventListener("focusout", () => setTimeout(show, 0));
  // The browser reconnects by itself after a dropped connection; a refusal (too many streams,
  // the session ended) closes the stream for good: fall back to reloading the fragment.
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED && el.hasAttribute("data-live")) poll(el);
  });
}

for (const el of document.querySelectorAll("[data-live], [data-stream]")) {
  if (el.hasAttribute("data-stream") && "EventSource" in window) stream(el);
  else if (el.hasAttribute("data-live")) poll(el);
}

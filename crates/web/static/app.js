// Live parts of the Denwa panel: elements with data-live="URL" reload that HTML fragment every
// two seconds. Everything works without this script; the pages are just not refreshed.
"use strict";
for (const el of document.querySelectorAll("[data-live]")) {
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

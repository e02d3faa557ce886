// Drag-and-drop transfer on the live calls page: drag a call's caller or callee (span.party)
// onto an extension (li[data-ext]); a dialog asks which party moves, then the panel's transfer
// route is posted and its answer (started, or the refusal) shown in #xfer-result. The call rows
// and the extension list are reloaded live, so the handlers are delegated from the document.
"use strict";
(() => {
  const dialog = document.getElementById("xfer-dialog");
  const form = document.getElementById("xfer-form");
  const result = document.getElementById("xfer-result");
  if (!dialog || !form || !result) return;
  const $ = (id) => document.getElementById(id);
  let dragged = null;

  const show = (text, ok) => {
    result.textContent = text;
    result.className = ok ? "ok" : "error";
    result.setAttribute("role", ok ? "status" : "alert");
  };

  document.addEventListener("dragstart", (e) => {
    const p = e.target.closest && e.target.closest("span.party[data-call]");
    if (!p) return;
    dragged = { ...p.dataset };
    e.dataTransfer.setData("text/plain", p.dataset.number || "");
    e.dataTransfer.effectAllowed = "move";
  });
  document.addEventListener("dragover", (e) => {
    if (dragged && e.target.closest && e.target.closest("li[data-ext]")) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
    }
  });
  document.addEventListener("drop", (e) => {
    const li = e.target.closest && e.target.closest("li[data-ext]");
    if (!dragged || !li) return;
    e.preventDefault();
    const d = dragged;
    dragged = null;
    form.action = `/calls/${encodeURIComponent(d.call)}/transfer`;
    $("xfer-call").textContent = `${d.caller} → ${d.callee}`;
    $("xfer-caller").textContent = d.caller;
    $("xfer-callee").textContent = d.callee;
    $("xfer-to").value = li.dataset.ext;
    $("xfer-to-label").textContent = li.dataset.ext;
    $("xfer-warn").hidden = li.dataset.state === "idle";
    for (const r of form.querySelectorAll("input[name=moves]")) r.checked = r.value === d.party;
    dialog.showModal();
  });
  document.addEventListener("dragend", () => { dragged = null; });

  $("xfer-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    dialog.close();
    try {
      const r = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        body: new URLSearchParams(new FormData(form)),
      });
      if (r.ok) {
        show(result.dataset.started, true);
      } else {
        // The panel answers a refusal with a page whose alert says why.
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const alerts = doc.querySelectorAll("main [role=alert]");
        const msg = alerts[alerts.length - 1];
        show(msg ? msg.textContent : `HTTP ${r.status}`, false);
      }
    } catch (err) {
      show(String(err), false);
    }
  });
})();

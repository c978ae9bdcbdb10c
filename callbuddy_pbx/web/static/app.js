// CallBuddy dashboard: the feed's and conversations' live updates (Server-Sent Events). No dependencies, no inline code (strict CSP).
"use strict";

(function () {
  const RETRY_AFTER_CLOSE_MS = 30000; // after a refusal (e.g. 503: too many live feeds) try again later

  function liveFeed(table) {
    const rows = table.tBodies[0];
    const badge = document.getElementById("live");
    let source = null;

    function show(state) {
      if (badge) {
        badge.dataset.state = state;
        badge.title = state === "on" ? "New calls appear as they happen" : "Not connected";
      }
    }

    function place(html) {
      // The server rendered and escaped the row; a <template> parses it without running anything.
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      const row = template.content.firstElementChild;
      if (!row || row.tagName !== "TR" || !row.id) {
        return;
      }
      const existing = document.getElementById(row.id);
      if (existing && table.dataset.liveMove === "top") {
        existing.remove(); // a conversation with news goes to the top of the list
        rows.insertBefore(row, rows.firstElementChild);
      } else if (existing) {
        existing.replaceWith(row);
      } else {
        rows.insertBefore(row, rows.firstElementChild);
        const empty = document.querySelector(".empty");
        if (empty) {
          empty.remove();
        }
      }
      row.classList.add("fresh");
    }

    function connect() {
      source = new EventSource(table.dataset.liveUrl);
      source.addEventListener("open", () => show("on"));
      source.addEventListener("row", (event) => place(event.data));
      source.addEventListener("error", () => {
        show("off");
        if (source.readyState === EventSource.CLOSED) {
          window.setTimeout(connect, RETRY_AFTER_CLOSE_MS);
        }
      });
    }

    window.addEventListener("pagehide", () => source && source.close());
    connect();
  }

  function liveThread(list) {
    // A conversation: new entries go at the end (time order), changed ones (a receipt) are replaced in place.
    const badge = document.getElementById("live");
    let source = null;

    function place(html) {
      const template = document.createElement("template");
      template.innerHTML = html.trim();
      const entry = template.content.firstElementChild;
      if (!entry || entry.tagName !== "LI" || !entry.id) {
        return;
      }
      const existing = document.getElementById(entry.id);
      if (existing) {
        existing.replaceWith(entry);
      } else {
        list.appendChild(entry);
      }
      entry.classList.add("fresh");
    }

    function connect() {
      source = new EventSource(list.dataset.liveUrl);
      source.addEventListener("open", () => badge && (badge.dataset.state = "on"));
      source.addEventListener("item", (event) => place(event.data));
      source.addEventListener("error", () => {
        if (badge) {
          badge.dataset.state = "off";
        }
        if (source.readyState === EventSource.CLOSED) {
          window.setTimeout(connect, RETRY_AFTER_CLOSE_MS);
        }
      });
    }

    window.addEventListener("pagehide", () => source && source.close());
    connect();
  }

  function sendOnce(form) {
    // The server stores one answer per form anyway (its token); this only spares a second click its round trip.
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      window.setTimeout(() => button && (button.disabled = true), 0);
    });
  }

  function autoSubmit(form) {
    // Choosing another business or period shows it at once (the button is there for keyboards and no-JS).
    form.querySelectorAll("select").forEach((select) => {
      select.addEventListener("change", () => form.requestSubmit());
    });
  }

  function callBackStatus(line) {
    // A call back on its way: ask how far it got every second until it ends (GET /call-backs/<id>, JSON).
    const POLL_MS = 1000;

    function poll() {
      fetch(line.dataset.callBackUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((status) => {
          if (!status) {
            return;
          }
          line.textContent = status.words; // text, never HTML
          line.dataset.stage = status.stage;
          line.dataset.inProgress = status.in_progress ? "yes" : "no";
          if (status.in_progress) {
            window.setTimeout(poll, POLL_MS);
          }
        })
        .catch(() => window.setTimeout(poll, POLL_MS * 5));
    }

    if (line.dataset.inProgress === "yes") {
      window.setTimeout(poll, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table[data-live-url]").forEach(liveFeed);
    document.querySelectorAll("form.filters").forEach(autoSubmit);
    document.querySelectorAll("ol[data-live-url]").forEach(liveThread);
    document.querySelectorAll("form.answer").forEach(sendOnce);
    document.querySelectorAll("form.call-back-form").forEach(sendOnce);
    document.querySelectorAll("[data-call-back-url]").forEach(callBackStatus);
  });
})();

// The demo partner page: mounts bff with embed.js, lists every embed event, and
// renews the launch in place (the "Renew" button, or by itself when the frame says
// the session is expiring). A fresh launch URL comes from this site's own server.
"use strict";
(function () {
  const container = document.getElementById("insights");
  const events = document.getElementById("events");
  const renewButton = document.getElementById("renew");
  if (!container || !window.BffEmbed) return;

  function log(name, text, kind) {
    const item = document.createElement("li");
    item.dataset.event = name;
    if (kind) item.className = kind;
    item.textContent = text ? name + ": " + text : name;
    events.append(item);
    return item;
  }

  async function freshLaunchUrl() {
    const response = await fetch("/launch", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ pair: container.dataset.pair }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.url !== "string") {
      throw new Error(body.error || "HTTP " + response.status);
    }
    return body.url;
  }

  const embed = BffEmbed.mount(container, { url: container.dataset.launchUrl });
  embed.on("ready", () => log("ready"));
  embed.on("resize", ({ height }) => {
    log("resize", "height " + height).dataset.height = String(height);
  });
  embed.on("session-expiring", ({ expiresIn }) => {
    log("session-expiring", "in " + expiresIn + " s");
    renew();
  });
  embed.on("session-expired", ({ reason }) => {
    log("session-expired", reason || "", "problem");
  });
  embed.on("error", ({ reason }) => log("error", reason, "problem"));

  let renewing = null;
  function renew() {
    // One renewal at a time: the button and session-expiring may ask together.
    renewing = renewing || (async () => {
      renewButton.disabled = true;
      try {
        embed.renew(await freshLaunchUrl());
        log("renewed", "", "partner");
      } catch (error) {
        log("renew-failed", error.message, "problem");
      } finally {
        renewButton.disabled = false;
        renewing = null;
      }
    })();
    return renewing;
  }
  renewButton.addEventListener("click", () => { renew(); });

  // For a look from the developer tools (and the browser tests).
  window.partnerDemo = { embed: embed, renew: renew };
})();

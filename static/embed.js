/*
 * bff embed.js: shows the bff insights dashboard in a partner page. Plain
 * JavaScript, no build step, no dependencies. Copy and paste:
 *
 *   <div id="insights"></div>
 *   <script src="https://bff.example/static/embed.js"></script>
 *   <script>
 *     // launchUrl: what your server got from POST /api/v1/embed/launches (single use, 60 s)
 *     const embed = BffEmbed.mount(document.getElementById("insights"), { url: launchUrl });
 *     embed.on("ready", () => {});
 *     embed.on("resize", ({ height }) => {});
 *     embed.on("session-expiring", async ({ expiresIn }) => embed.renew(await newLaunchUrl()));
 *     embed.on("session-expired", ({ reason }) => {});
 *     embed.on("error", ({ reason }) => {});  // cookies-blocked, forbidden, vendor-unavailable, …
 *     // embed.destroy() removes the iframe and its listeners
 *   </script>
 *
 * Options: url (required, absolute http(s)), minHeight (default 200), maxHeight
 * (default 4000), title (the iframe's accessible name).
 *
 * Trust: the bff origin is the launch URL's origin. A message counts only when it
 * comes from that exact origin and from this embed's own iframe and says {bff: 1};
 * anything else (other windows, other frames, the host page itself) is ignored.
 * The script never posts messages. Heights come from the frame, which measures its
 * content wrapper rather than itself, and are only applied here, clamped: nothing
 * here measures the iframe, so its size cannot feed back into the next report.
 */
(function () {
  "use strict";

  var EVENTS = ["ready", "resize", "session-expiring", "session-expired", "error"];
  var DEFAULTS = { minHeight: 200, maxHeight: 4000, title: "Insights dashboard" };
  var MAX_REASON = 64;

  function bffOriginOf(url) {
    var parsed;
    try {
      parsed = new URL(url);
    } catch (e) {
      throw new TypeError("BffEmbed: url must be an absolute launch URL");
    }
    // Anything else (javascript:, data:, blob:) would run in or as the host page.
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw new TypeError("BffEmbed: url must be an http(s) launch URL");
    }
    return parsed.origin;
  }

  function height(value, fallback) {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "number" || !isFinite(value) || value < 0) {
      throw new TypeError("BffEmbed: minHeight and maxHeight must be non-negative numbers");
    }
    return Math.round(value);
  }

  function reasonOf(data) {
    var reason = data.reason;
    return typeof reason === "string" && reason.length <= MAX_REASON ? reason : undefined;
  }

  function createFrame(url, title, px) {
    var frame = document.createElement("iframe");
    frame.src = url;
    frame.title = title;
    frame.referrerPolicy = "no-referrer";
    // No sandbox attribute: the dashboard needs its scripts, forms and its own origin
    // (for its cookie and its storage), and a sandbox allowing scripts together with
    // same-origin protects nothing. The frame's own CSP and bff's frame-ancestors
    // header are what confine it. No allow attribute either: it needs no feature.
    // Set through the style property, which a host page CSP without
    // 'unsafe-inline' styles still permits (a style attribute it would block).
    frame.style.display = "block";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = px + "px";
    return frame;
  }

  function mount(element, options) {
    if (!element || typeof element.appendChild !== "function") {
      throw new TypeError("BffEmbed.mount: the first argument must be a DOM element");
    }
    options = options || {};
    var bffOrigin = bffOriginOf(options.url);
    var minHeight = height(options.minHeight, DEFAULTS.minHeight);
    var maxHeight = height(options.maxHeight, DEFAULTS.maxHeight);
    if (minHeight > maxHeight) {
      throw new RangeError("BffEmbed.mount: minHeight is greater than maxHeight");
    }
    var title = typeof options.title === "string" && options.title ? options.title : DEFAULTS.title;
    var handlers = {};
    EVENTS.forEach(function (name) { handlers[name] = []; });
    var current = minHeight;
    var iframe = createFrame(options.url, title, current);
    var destroyed = false;

    function emit(name, detail) {
      handlers[name].slice().forEach(function (handler) {
        try {
          handler(detail);
        } catch (error) {
          // One failing handler must not silence the others; the error still surfaces.
          setTimeout(function () { throw error; });
        }
      });
    }

    function resize(reported) {
      if (typeof reported !== "number" || !isFinite(reported)) return;
      var next = Math.min(maxHeight, Math.max(minHeight, Math.ceil(reported)));
      if (next === current) return;
      current = next;
      iframe.style.height = next + "px";
      emit("resize", { height: next });
    }

    function onMessage(event) {
      if (event.origin !== bffOrigin || event.source !== iframe.contentWindow) return;
      var data = event.data;
      if (!data || typeof data !== "object" || data.bff !== 1) return;
      switch (data.type) {
        case "ready":
          emit("ready", {});
          break;
        case "resize":
          resize(data.height);
          break;
        case "session-expiring":
          if (typeof data.expiresIn === "number" && isFinite(data.expiresIn)) {
            emit("session-expiring", { expiresIn: data.expiresIn });
          }
          break;
        case "session-expired":
          emit("session-expired", reasonOf(data) ? { reason: reasonOf(data) } : {});
          break;
        case "error":
          emit("error", { reason: reasonOf(data) || "unknown" });
          break;
        default:
          break;
      }
    }

    function alive(method) {
      if (destroyed) throw new Error("BffEmbed." + method + ": this embed was destroyed");
    }

    window.addEventListener("message", onMessage);
    element.appendChild(iframe);

    return {
      on: function (name, handler) {
        alive("on");
        if (!Object.prototype.hasOwnProperty.call(handlers, name)) {
          throw new TypeError("BffEmbed.on: unknown event " + JSON.stringify(name) +
            " (one of " + EVENTS.join(", ") + ")");
        }
        if (typeof handler !== "function") {
          throw new TypeError("BffEmbed.on: the handler must be a function");
        }
        handlers[name].push(handler);
        return this;
      },
      renew: function (url) {
        alive("renew");
        var origin;
        try {
          origin = bffOriginOf(url);
        } catch (error) {
          throw new TypeError("BffEmbed.renew: " + error.message.replace(/^BffEmbed: /, ""));
        }
        if (origin !== bffOrigin) {
          throw new Error("BffEmbed.renew: refused a launch URL of another origin (" +
            origin + ", not " + bffOrigin + ")");
        }
        // A fresh iframe in place of the old one rather than a new src: a changed src
        // adds a history entry to the host page, and its Back button would then reopen
        // the spent launch URL. The height stays, so the page does not jump.
        var next = createFrame(url, title, current);
        iframe.replaceWith(next);
        iframe = next;
        return this;
      },
      destroy: function () {
        if (destroyed) return;
        destroyed = true;
        window.removeEventListener("message", onMessage);
        iframe.remove();
        EVENTS.forEach(function (name) { handlers[name] = []; });
      },
      get iframe() {
        return destroyed ? null : iframe;
      },
    };
  }

  window.BffEmbed = Object.freeze({ mount: mount });
})();

/*
 * bff embed-frame.js: the script of bff's own embed pages, inside the partner's
 * iframe (the host page runs embed.js). Plain JavaScript, no build step.
 *
 * It reads #bff-embed-config (JSON: origin, expiresIn, event, fallback; see
 * bff/web/partner/frame.py) and talks to the parent window only:
 *
 *   {bff: 1, type: "ready"}                         the dashboard iframe is in place
 *   {bff: 1, type: "resize", height: <px>}          #bff-embed-content's height changed
 *   {bff: 1, type: "session-expiring", expiresIn: <s>}   120 s before the session ends
 *   {bff: 1, type: "session-expired"}               it has ended (timer, or a 401)
 *   {bff: 1, type: "error", reason: "cookies-blocked" | "forbidden"
 *                                 | "vendor-unavailable" | "vendor-error"}
 *
 * Messages go to the session's exact partner origin; to "*" only while no session
 * is known (launch refusals, forbidden, the bootstrap before its answer), when they
 * carry nothing but a type, a reason or a height.
 *
 * The height is measured on the content wrapper, never on the document or body:
 * those fill the frame, so measuring them would grow with every resize the host
 * applies. It is reported only when it changed by at least 1 px.
 *
 * The cookieless fallback: the session handle arrives once in the address's
 * fragment (#handle=…). It is removed from the address at once, kept in this
 * closure only, and sent in the X-Bff-Embed-Session header to the page's
 * fallback URL, whose JSON says how to show the dashboard.
 */
(function () {
  "use strict";

  var HANDLE_HEADER = "X-Bff-Embed-Session";
  var EXPIRING_LEAD_MS = 120 * 1000;
  // Timers stall in background tabs and asleep machines: look at the clock again at
  // least this often, and whenever the page becomes visible.
  var RECHECK_MS = 60 * 1000;
  var DEFAULT_RETRY_S = 30;
  var ORIGIN = /^https?:\/\/[^\/\s?#]+$/;

  var config = readConfig();
  var target = validOrigin(config.origin) ? config.origin : "*";
  var handle = takeHandle();
  var content = document.getElementById("bff-embed-content");
  var lastHeight = -1;
  var deadline = null;
  var warned = false;
  var ended = false;
  var timer = null;

  function readConfig() {
    var element = document.getElementById("bff-embed-config");
    try {
      var parsed = JSON.parse(element ? element.textContent : "{}");
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (e) {
      return {};
    }
  }

  function validOrigin(value) {
    return typeof value === "string" && ORIGIN.test(value);
  }

  function takeHandle() {
    var found = /(?:^#|&)handle=([^&]*)/.exec(window.location.hash);
    if (window.location.hash) {
      // Before anything else: the handle must not outlive this page in history.
      window.history.replaceState(null, "", window.location.pathname);
    }
    return found && found[1] ? decodeURIComponent(found[1]) : null;
  }

  function post(message) {
    if (window.parent === window) return;
    message.bff = 1;
    window.parent.postMessage(message, target);
  }

  // Size.

  function report() {
    var height = Math.ceil(content.getBoundingClientRect().height);
    if (Math.abs(height - lastHeight) < 1) return;
    lastHeight = height;
    post({ type: "resize", height: height });
  }

  function observe() {
    if (!content) return;
    if (typeof window.ResizeObserver === "function") {
      new window.ResizeObserver(report).observe(content);
    } else {
      report();
      window.addEventListener("resize", report);
    }
  }

  // Time.

  function startClock(expiresIn) {
    if (typeof expiresIn !== "number" || !isFinite(expiresIn) || deadline !== null) return;
    deadline = Date.now() + Math.max(0, expiresIn) * 1000;
    document.addEventListener("visibilitychange", tick);
    window.addEventListener("pageshow", tick);
    tick();
  }

  function tick() {
    if (deadline === null || ended) return;
    window.clearTimeout(timer);
    var left = deadline - Date.now();
    if (left <= 0) {
      expire();
      return;
    }
    if (!warned && left <= EXPIRING_LEAD_MS) {
      warned = true;
      post({ type: "session-expiring", expiresIn: Math.max(0, Math.round(left / 1000)) });
    }
    var next = warned ? left : left - EXPIRING_LEAD_MS;
    timer = window.setTimeout(tick, Math.max(0, Math.min(next, RECHECK_MS)));
  }

  function expire() {
    if (ended) return;
    ended = true;
    window.clearTimeout(timer);
    post({ type: "session-expired" });
    notice("session-expired");
  }

  // What the frame shows.

  function notice(reason) {
    if (!content) return;
    var texts = document.getElementById("bff-embed-notices");
    var text = texts && texts.content.querySelector('[data-reason="' + reason + '"]');
    var section = document.createElement("section");
    section.className = "card error";
    section.setAttribute("role", "alert");
    var title = document.createElement("h1");
    title.textContent = text ? text.getAttribute("data-title") : "Dashboard not available";
    var message = document.createElement("p");
    message.textContent = text ? text.textContent : "";
    section.appendChild(title);
    section.appendChild(message);
    content.replaceChildren(section);
  }

  function fail(reason) {
    post({ type: "error", reason: reason });
    notice(reason);
  }

  function ready() {
    post({ type: "ready" });
  }

  function showDashboard() {
    var form = document.getElementById("bff-embed-token-form");
    if (form) form.submit();
    ready();
    startClock(config.expiresIn);
  }

  // The cookieless fallback.

  function fallback(settings) {
    if (!handle) {
      if (settings.ended) {
        ended = true;
        post({ type: "session-expired" });
        notice("session-expired");
      } else {
        fail("cookies-blocked");
      }
      return;
    }
    var failing = false;

    function retryLater(reason, seconds) {
      if (!failing) fail(reason);
      failing = true;
      window.setTimeout(ask, seconds * 1000);
    }

    function ask() {
      if (ended) return;
      window
        .fetch(settings.url, {
          headers: (function () {
            var headers = {};
            headers[HANDLE_HEADER] = handle;
            return headers;
          })(),
          credentials: "omit",
          cache: "no-store",
          redirect: "error",
          referrerPolicy: "no-referrer",
        })
        .then(function (response) {
          if (response.status === 401) {
            ended = true;
            post({ type: "session-expired" });
            notice("session-expired");
            return null;
          }
          return response.json().then(function (body) {
            if (validOrigin(body.origin)) target = body.origin;
            if (response.ok) {
              build(body);
              return;
            }
            var reason = typeof body.reason === "string" ? body.reason : "vendor-error";
            if (response.status === 503 && reason === "vendor-unavailable") {
              var retry = parseInt(response.headers.get("Retry-After") || "", 10);
              retryLater(reason, retry > 0 ? retry : DEFAULT_RETRY_S);
              return;
            }
            fail(reason);
          });
        })
        .catch(function () {
          retryLater("vendor-unavailable", DEFAULT_RETRY_S);
        });
    }

    ask();
  }

  function build(answer) {
    var frame = answer.frame || {};
    var iframe = document.createElement("iframe");
    iframe.id = "bff-embed-vendor";
    iframe.className = "bff-embed-vendor";
    iframe.name = frame.name || "vendor-dashboard";
    iframe.title = frame.title || "Dashboard";
    iframe.referrerPolicy = "no-referrer";
    iframe.src = answer.post ? "about:blank" : frame.src;
    content.replaceChildren(iframe);
    if (answer.post) {
      // The token goes into the named iframe as a POST body: it is in no URL.
      var form = document.createElement("form");
      form.method = "post";
      form.action = answer.post.action;
      form.target = iframe.name;
      form.hidden = true;
      var fields = answer.post.fields || {};
      Object.keys(fields).forEach(function (name) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = fields[name];
        form.appendChild(input);
      });
      content.appendChild(form);
      form.submit();
    }
    ready();
    startClock(answer.expiresIn);
  }

  function start() {
    observe();
    var event = config.event;
    if (event && typeof event.type === "string") {
      var message = { type: event.type };
      if (typeof event.reason === "string") message.reason = event.reason;
      post(message);
      if (event.type === "session-expired") ended = true;
    }
    if (config.fallback) {
      fallback(config.fallback);
      return;
    }
    if (document.getElementById("bff-embed-vendor")) showDashboard();
    else startClock(config.expiresIn);
  }

  start();
})();

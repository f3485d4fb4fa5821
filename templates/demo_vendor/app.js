// Fragment delivery: the token arrives as #token=… and never reaches a server in a
// URL. Drop it from the address bar, then ask insights.json with it in a header.
(function () {
  "use strict";
  var main = document.getElementById("insights");
  if (!main || main.getAttribute("data-state") !== "awaiting") return;

  var params = new URLSearchParams(window.location.hash.slice(1));
  var token = params.get("token");
  if (token) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function element(name, text, cls) {
    var node = document.createElement(name);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function invalid(reason) {
    main.replaceChildren(element("h1", "Invalid token"), element("p", reason, "error"));
    main.setAttribute("data-state", "invalid");
    document.title = "Invalid token · Demo vendor";
  }

  function render(data) {
    var svgNs = "http://www.w3.org/2000/svg";
    var kpis = element("ul", undefined, "kpis");
    data.kpis.forEach(function (kpi) {
      var item = element("li");
      item.append(element("span", kpi.label, "label"), " ", element("strong", kpi.value));
      kpis.append(item);
    });
    var svg = document.createElementNS(svgNs, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("viewBox", "0 0 320 130");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Conversations per month");
    data.series.forEach(function (point, i) {
      var bar = document.createElementNS(svgNs, "rect");
      bar.setAttribute("x", String(12 + i * 50));
      bar.setAttribute("y", String(110 - point.value));
      bar.setAttribute("width", "32");
      bar.setAttribute("height", String(point.value));
      bar.setAttribute("rx", "3");
      var label = document.createElementNS(svgNs, "text");
      label.setAttribute("x", String(28 + i * 50));
      label.setAttribute("y", "125");
      label.setAttribute("text-anchor", "middle");
      label.textContent = point.label;
      svg.append(bar, label);
    });
    var figure = element("figure");
    figure.append(svg, element("figcaption", "Conversations per month"));
    main.replaceChildren(element("h1", data.heading), kpis, figure);
    main.setAttribute("data-state", "ok");
    document.title = data.heading + " · Demo vendor";
  }

  if (!token) {
    invalid("No token was provided.");
    return;
  }
  fetch("insights.json", {
    headers: { Authorization: "Bearer " + token },
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  })
    .then(function (response) {
      if (!response.ok) throw new Error("rejected");
      return response.json();
    })
    .then(render)
    .catch(function () {
      invalid("This dashboard was opened without a valid token, or the token has expired.");
    });
})();

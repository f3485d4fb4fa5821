// The demo vendor's hostile page: what vendor code (or an XSS in it) would try against
// bff once it runs in bff's frame. ?bff=ORIGIN names bff's own origin. The outcome of
// every attempt is written to #result as JSON, for the isolation test to read.
(function () {
  "use strict";
  var bff = new URLSearchParams(location.search).get("bff") || "";

  function parentDocument() {
    try {
      var doc = window.parent.document;
      return { read: true, title: doc.title, forms: doc.forms.length };
    } catch (error) {
      return { read: false, error: error.name };
    }
  }

  function attempt(url, options) {
    return fetch(url, options).then(
      function (response) {
        return response.text().then(function (body) {
          return { type: response.type, status: response.status, body: body.slice(0, 200) };
        });
      },
      function (error) {
        return { error: error.name };
      }
    );
  }

  var withSession = { credentials: "include", redirect: "manual" };
  var noCors = { credentials: "include", mode: "no-cors" };
  var result = { parent: parentDocument(), top: null, cookie: document.cookie };
  try {
    result.top = { read: true, title: window.top.document.title };
  } catch (error) {
    result.top = { read: false, error: error.name };
  }
  Promise.all([
    attempt(bff + "/", withSession),
    attempt(bff + "/admin/", withSession),
    attempt(bff + "/", noCors),
    attempt("/", withSession),
    attempt("/login", withSession),
    attempt("/admin/", withSession),
    attempt("/api/v1/user", withSession),
  ]).then(function (found) {
    result.bffPage = found[0];
    result.bffAdmin = found[1];
    result.bffPageNoCors = found[2];
    result.ownRoot = found[3];
    result.ownLogin = found[4];
    result.ownAdmin = found[5];
    result.ownApi = found[6];
    document.getElementById("result").textContent = JSON.stringify(result);
  });
})();

// Front-channel logout on the flow page (served as a file: the CSP forbids inline scripts).
// `ak-provider-iframe-logout`: each service provider's logout message is loaded in a hidden
// frame, all at once (a URL, or a form posted into the frame); when every frame has loaded, or
// after a few seconds, the flow's form is submitted and the flow goes on.
// `ak-provider-saml-native-logout` with the Redirect binding: the browser goes to the provider.
"use strict";
(function () {
  var FRAME_TIMEOUT = 5000;
  var PAGE_TIMEOUT = 6000;

  function field(form, name, value) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }

  function frames(form) {
    var urls = JSON.parse(form.querySelector("[data-logout-urls]").textContent);
    var items = form.querySelectorAll("[data-logout-status]");
    var left = urls.length;
    var submitted = false;
    function finish() {
      if (!submitted) {
        submitted = true;
        form.submit();
      }
    }
    if (!left) {
      finish();
      return;
    }
    var pageTimer = setTimeout(finish, PAGE_TIMEOUT);
    urls.forEach(function (entry, index) {
      var frame = document.createElement("iframe");
      frame.name = "logout-frame-" + index;
      frame.style.display = "none";
      frame.setAttribute("aria-hidden", "true");
      var settled = false;
      function settle(status) {
        if (settled) {
          return;
        }
        settled = true;
        if (items[index]) {
          items[index].setAttribute("data-logout-status", status);
        }
        left -= 1;
        if (left === 0) {
          clearTimeout(pageTimer);
          finish();
        }
      }
      document.body.appendChild(frame);
      // Listened to after insertion: the empty frame's own first load does not count.
      frame.addEventListener("load", function () {
        settle("done");
      });
      setTimeout(function () {
        settle("timeout");
      }, FRAME_TIMEOUT);
      if (entry.binding === "post" && entry.saml_request) {
        var post = document.createElement("form");
        post.method = "post";
        post.action = entry.url;
        post.target = frame.name;
        post.style.display = "none";
        field(post, "SAMLRequest", entry.saml_request);
        if (entry.saml_relay_state) {
          field(post, "RelayState", entry.saml_relay_state);
        }
        document.body.appendChild(post);
        post.submit();
        post.remove();
      } else {
        frame.src = entry.url;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("[data-logout-frames]");
    if (form) {
      frames(form);
    }
    var next = document.getElementById("logout-redirect");
    if (next) {
      window.location.assign(next.href);
    }
  });
})();

// Submits the response form of an OAuth2 `form_post` (served as a file: the CSP forbids inline
// scripts). Without JavaScript the page shows a Continue button instead.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post");
  if (form) {
    form.submit();
  }
});

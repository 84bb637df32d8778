// Example links fill the form in place (without JavaScript they reload the page pre-filled).
(function () {
  "use strict";
  var form = document.getElementById("predict-form");
  if (!form) return;
  var names = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
  document.querySelectorAll("a[data-example]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      link.dataset.example.split(",").forEach(function (value, i) {
        form.elements[names[i]].value = value;
      });
      form.elements[names[0]].focus();
    });
  });
})();

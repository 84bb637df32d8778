// Keeps the event timeline current: the server re-renders a chain whenever one of its events
// arrives and sends it as a server-sent event; we swap it in (or add a new chain at the top).
(function () {
  "use strict";
  var list = document.getElementById("chains");
  var status = document.getElementById("live-status");
  if (!list || !window.EventSource) return;

  function show(text, live) {
    if (!status) return;
    status.textContent = text;
    status.className = live ? "live on" : "live off";
  }

  var source = new EventSource(list.dataset.stream);
  source.addEventListener("open", function () { show("live", true); });
  source.addEventListener("error", function () { show("reconnecting…", false); });
  source.addEventListener("chain", function (message) {
    var update = JSON.parse(message.data);
    // The HTML was rendered by the server with autoescaping; event data never reaches it raw.
    var template = document.createElement("template");
    template.innerHTML = update.html.trim();
    var fresh = template.content.firstElementChild;
    if (!fresh) return;
    var current = document.getElementById("chain-" + update.chainid);
    if (current) {
      current.replaceWith(fresh);
    } else {
      var empty = document.getElementById("no-chains");
      if (empty) empty.remove();
      list.prepend(fresh);
    }
    fresh.classList.add("updated");
  });
})();

// Review desk keyboard shortcuts: j/k next/previous, a approve (or recommend), r refuse
// (or not recommend), i ask for more information. No shortcut fires while typing in a field.
(function () {
  "use strict";
  var DECISIONS = { a: ["approve", "recommend"], r: ["reject", "not_recommend"], i: ["needs_info"] };
  var STORE = "desk-queue";

  function typing(event) {
    var el = event.target;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
  }

  function plain(event) {
    return !(event.ctrlKey || event.metaKey || event.altKey) && !typing(event);
  }

  var table = document.getElementById("queue");
  if (table) {
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr"));
    try {
      sessionStorage.setItem(STORE, JSON.stringify(rows.map(function (r) { return r.getAttribute("data-href"); })));
    } catch (e) { /* storage off: j/k still work on this page */ }
    var current = -1;
    var select = function (index) {
      if (!rows.length) { return; }
      current = Math.max(0, Math.min(rows.length - 1, index));
      rows.forEach(function (r) { r.classList.remove("selected"); });
      rows[current].classList.add("selected");
      rows[current].querySelector("a").focus();
    };
    document.addEventListener("keydown", function (event) {
      if (!plain(event)) { return; }
      if (event.key === "j") { select(current + 1); event.preventDefault(); }
      else if (event.key === "k") { select(current - 1); event.preventDefault(); }
      else if (DECISIONS[event.key] && current >= 0) { window.location.href = rows[current].getAttribute("data-href"); }
    });
  }

  var form = document.getElementById("decide");
  var note = document.getElementById("note");
  // Before the branch has reviewed it, approving or refusing also needs the commune's reason.
  var override = document.getElementById("override");
  var pending = null;
  // The box still to fill before `button` may go (null when none).
  function missing(button) {
    if (button.getAttribute("data-reason") === "1" && note.value.trim().length < 3) { return note; }
    if (override && button.getAttribute("data-override") === "1" && override.value.trim().length < 5) { return override; }
    return null;
  }
  if (form && note) {
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      var box = button ? missing(button) : null;
      if (box) {
        event.preventDefault();
        pending = button;
        box.focus();
      }
    });
    [note, override].forEach(function (box) {
      if (!box) { return; }
      box.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && pending) {
          event.preventDefault();
          pending.click();
        }
      });
    });
  }

  document.addEventListener("keydown", function (event) {
    if (table || !plain(event)) { return; }
    if ((event.key === "j" || event.key === "k") && document.getElementById("back")) {
      var list = [];
      try { list = JSON.parse(sessionStorage.getItem(STORE) || "[]"); } catch (e) { list = []; }
      var here = window.location.pathname + window.location.search;
      var index = list.findIndex(function (href) { return href && href.split("?")[0] === window.location.pathname; });
      var next = index < 0 ? -1 : index + (event.key === "j" ? 1 : -1);
      if (next >= 0 && next < list.length && list[next] !== here) { window.location.href = list[next]; }
      event.preventDefault();
      return;
    }
    if (form && DECISIONS[event.key]) {
      var names = DECISIONS[event.key];
      for (var n = 0; n < names.length; n++) {
        var button = document.getElementById("do-" + names[n]);
        if (button) {
          event.preventDefault();
          var box = missing(button);
          if (box) {
            pending = button;
            box.focus();
          } else {
            button.click();
          }
          return;
        }
      }
    }
  });
})();

// The in-page check of report.html, run by tests/chromium.rs before the
// page's own script; __PLOTS__ is replaced with the number of plots.
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push("uncaught error: " + e.message);
  });
  document.addEventListener("securitypolicyviolation", function (e) {
    errors.push("blocked: " + e.blockedURI + " (" + e.violatedDirective + ")");
  });
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      errors.push("console." + level + ": " + Array.prototype.join.call(arguments, " "));
      original.apply(console, arguments);
    };
  });

  function keys(table, index, numeric) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
      var cell = row.cells[index];
      if (!cell.hasAttribute("data-sort")) {
        return null;
      }
      var v = cell.getAttribute("data-sort");
      return numeric ? parseFloat(v) : v;
    });
  }

  // Keys in `order` (1 ascending, -1 descending), nulls after every value.
  function sorted(ks, numeric, order) {
    for (var i = 1; i < ks.length; i++) {
      var a = ks[i - 1], b = ks[i];
      if (b === null) continue;
      if (a === null) return false;
      var c = numeric ? a - b : a.localeCompare(b, "en", { numeric: true });
      if (order * c > 0) return false;
    }
    return true;
  }

  function checkSorting(fails) {
    var tables = document.querySelectorAll("table.sortable");
    if (tables.length < 4) fails.push("sortable tables: " + tables.length);
    var reordered = 0;
    Array.prototype.forEach.call(tables, function (table, t) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        var button = th.querySelector("button");
        if (!button) return;
        var numeric = th.getAttribute("data-type") === "num";
        var name = "table " + t + " column '" + button.textContent + "'";
        var before = table.tBodies[0].rows[0];
        button.click();
        var first = th.getAttribute("aria-sort");
        var want = numeric ? "descending" : "ascending";
        if (first !== want) fails.push(name + ": first click sorts " + first);
        var ks = keys(table, index, numeric);
        if (!sorted(ks, numeric, first === "ascending" ? 1 : -1))
          fails.push(name + ": not sorted " + first + ": " + JSON.stringify(ks));
        if (table.tBodies[0].rows[0] !== before) reordered++;
        button.click();
        var second = th.getAttribute("aria-sort");
        if (second === first) fails.push(name + ": a second click does not reverse");
        ks = keys(table, index, numeric);
        if (!sorted(ks, numeric, second === "ascending" ? 1 : -1))
          fails.push(name + ": not sorted " + second + ": " + JSON.stringify(ks));
      });
    });
    if (reordered === 0) fails.push("no click reordered any table");
    // The grid by alexnet's mean, best first: arelu leads, sigmoid trails.
    var grid = document.querySelector("table.grid");
    var alexnet = grid.tHead.rows[0].cells[1].querySelector("button");
    alexnet.click();
    if (grid.tHead.rows[0].cells[1].getAttribute("aria-sort") !== "descending") alexnet.click();
    var order = Array.prototype.map.call(grid.tBodies[0].rows, function (r) {
      return r.cells[0].textContent;
    }).join(",");
    if (order !== "arelu,relu,asigmoid,sigmoid") fails.push("grid by alexnet: " + order);
  }

  function checkPlots(fails) {
    var svgs = document.querySelectorAll("svg");
    if (svgs.length !== __PLOTS__) fails.push("svg elements: " + svgs.length + ", plots: __PLOTS__");
    Array.prototype.forEach.call(svgs, function (svg) {
      var id = svg.parentElement.id;
      var box = svg.getBoundingClientRect();
      if (!(box.width > 100 && box.height > 100))
        fails.push(id + ": svg box " + box.width + "x" + box.height);
      var text = svg.querySelector("text");
      var tb = text && text.getBoundingClientRect();
      if (!tb || !(tb.width > 0 && tb.height > 0)) fails.push(id + ": its text is not drawn");
      var marks = svg.querySelectorAll("polyline, polygon, rect");
      if (marks.length < 3) fails.push(id + ": " + marks.length + " marks");
    });
  }

  function checkLinks(fails) {
    var links = document.querySelectorAll("a[href]");
    Array.prototype.forEach.call(links, function (a) {
      var href = a.getAttribute("href");
      if (href.charAt(0) !== "#" || !document.getElementById(href.slice(1)))
        fails.push("link without its target: " + href);
    });
    if (document.querySelectorAll("#runs a[href^='#plot-']").length === 0)
      fails.push("no run links to a plot");
  }

  function checkStyle(fails) {
    var best = document.querySelectorAll("td.best");
    if (best.length === 0) fails.push("no best cell");
    Array.prototype.forEach.call(best, function (td) {
      if (parseInt(getComputedStyle(td).fontWeight, 10) < 700) fails.push("best cell not bold");
    });
    var verdict = document.querySelector(".verdict.supports");
    if (!verdict || getComputedStyle(verdict).color === getComputedStyle(document.body).color)
      fails.push("the verdict word has no colour of its own");
    var details = document.querySelector("details.claim");
    details.open = true;
    var units = details.querySelector("ul.units").getBoundingClientRect();
    if (!(units.height > 0)) fails.push("an opened claim shows no units");
  }

  window.addEventListener("load", function () {
    var fails = [];
    [checkPlots, checkLinks, checkStyle, checkSorting].forEach(function (check) {
      try {
        check(fails);
      } catch (e) {
        fails.push(check.name + " threw: " + e);
      }
    });
    fails = errors.concat(fails);
    var out = document.createElement("pre");
    out.id = "acbench-check";
    out.textContent = (fails.length ? "FAIL\n" + fails.join("\n") : "PASS") + "\nEND-CHECK";
    document.body.appendChild(out);
  });
})();

// Sorting of report.html's tables (class "sortable"): clicking a column's
// header sorts the rows by that column: numbers by their data-sort value,
// largest first; text alphabetically. Clicking again reverses the order.
// Rows with no value in the column (empty cells, cells whose runs all
// diverged) stay last either way.
"use strict";
(function () {
  function value(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell || !cell.hasAttribute("data-sort")) {
      return null;
    }
    var raw = cell.getAttribute("data-sort");
    if (!numeric) {
      return raw;
    }
    var n = parseFloat(raw);
    return isNaN(n) ? null : n;
  }

  function sort(table, th) {
    var index = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "num";
    var now = th.getAttribute("aria-sort");
    var order;
    if (now === "ascending") {
      order = "descending";
    } else if (now === "descending") {
      order = "ascending";
    } else {
      order = numeric ? "descending" : "ascending";
    }
    var sign = order === "ascending" ? 1 : -1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", order);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index, numeric);
      var y = value(b, index, numeric);
      if (x === null || y === null) {
        return (x === null ? 1 : 0) - (y === null ? 1 : 0);
      }
      if (numeric) {
        return sign * (x - y);
      }
      return sign * x.localeCompare(y, "en", { numeric: true });
    });
    rows.forEach(function (r) {
      body.appendChild(r);
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (button) {
        button.addEventListener("click", function () {
          sort(table, th);
        });
      }
    });
  });
})();

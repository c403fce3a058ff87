/* hwcal site index: one row per calibration from data/index.js, sorting and filtering. No dependencies.
   Data go into the page through textContent only: a name such as <script> stays text. */
(function () {
  "use strict";
  var data = window.HWCAL_INDEX;
  if (!data) { return; }
  var F = data.fields, P = data.precisions;
  var rows = data.rows.map(function (a) {
    var r = {};
    F.forEach(function (f, i) { r[f] = a[i]; });
    return r;
  });
  var columns = [
    { id: "hw", label: "hardware", text: true }, { id: "dt", label: "type", text: true },
    { id: "mode", label: "power mode", text: true }, { id: "freq", label: "MHz", num: true },
    { id: "fw", label: "framework", text: true }
  ];
  P.forEach(function (p, i) { columns.push({ id: "p" + i, label: p + (p.indexOf("int") === 0 ? " GOPS" : " GFLOPS"),
                                               num: true, peak: i }); });
  columns.push({ id: "bw", label: "DRAM GB/s", num: true }, { id: "date", label: "calibrated", text: true },
               { id: "clock", label: "clock MHz", num: true });
  var $ = function (id) { return document.getElementById(id); };
  var sortBy = null, sortDir = 1;

  function value(r, c) { return c.peak !== undefined ? r.peaks[c.peak] : r[c.id]; }
  function fmt(v) {
    if (v === null || v === undefined) { return "-"; }
    if (typeof v !== "number") { return String(v); }
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(4)));
  }

  var head = $("cal-head");
  columns.forEach(function (c) {
    var th = document.createElement("th");
    th.scope = "col";
    th.setAttribute("aria-sort", "none");
    if (c.num) { th.className = "num"; }
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = c.label;
    b.addEventListener("click", function () {
      sortDir = sortBy === c ? -sortDir : (c.num ? -1 : 1);
      sortBy = c;
      Array.prototype.forEach.call(head.children, function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      render();
    });
    th.appendChild(b);
    head.appendChild(th);
  });

  function fill(select, values) {
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v;
      o.textContent = v;
      select.appendChild(o);
    });
  }
  function distinct(f) {
    var seen = {};
    rows.forEach(function (r) { seen[r[f]] = true; });
    return Object.keys(seen).sort();
  }
  fill($("f-dt"), distinct("dt"));
  fill($("f-mode"), distinct("mode"));
  fill($("f-fw"), distinct("fw"));
  fill($("f-prec"), P);

  function matches(r) {
    if (!$("f-sup").checked && r.sup) { return false; }
    var dt = $("f-dt").value, mode = $("f-mode").value, fw = $("f-fw").value, prec = $("f-prec").value;
    if (dt && r.dt !== dt) { return false; }
    if (mode && r.mode !== mode) { return false; }
    if (fw && r.fw !== fw) { return false; }
    if (prec) {
      var v = r.peaks[P.indexOf(prec)];
      if (v === null || v === undefined) { return false; }
    }
    var text = $("f-text").value.trim().toLowerCase();
    if (text) {
      var hay = [r.hw, r.model, r.mode, r.fw, r.dt, r.date, String(r.freq)].join(" ").toLowerCase();
      var words = text.split(/\s+/);
      for (var i = 0; i < words.length; i++) { if (hay.indexOf(words[i]) < 0) { return false; } }
    }
    return true;
  }

  function compare(a, b) {
    var x = value(a, sortBy), y = value(b, sortBy);
    var xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn || yn) { return xn === yn ? 0 : (xn ? 1 : -1); }  /* unknown values last either way */
    return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
  }

  function render() {
    var shown = rows.filter(matches);
    if (sortBy) { shown.sort(compare); }
    var body = $("cal-body"), frag = document.createDocumentFragment();
    shown.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-page", r.page);
      if (r.sup) { tr.className = "superseded"; }
      columns.forEach(function (c, i) {
        var cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) {
          cell.scope = "row";
          var a = document.createElement("a");
          a.href = r.page;
          a.textContent = r.hw;
          cell.appendChild(a);
          if (r.model) {
            var small = document.createElement("div");
            small.className = "note";
            small.textContent = r.model + (r.sup ? " (superseded)" : "");
            cell.appendChild(small);
          }
        } else if (c.id === "date") {
          var link = document.createElement("a");
          link.href = r.key;
          link.title = "history of this key";
          link.textContent = String(r.date || "").slice(0, 10);
          cell.appendChild(link);
        } else {
          cell.textContent = fmt(value(r, c));
        }
        if (c.num) { cell.className = "num"; }
        tr.appendChild(cell);
      });
      frag.appendChild(tr);
    });
    body.textContent = "";
    body.appendChild(frag);
    $("count").textContent = shown.length + " of " + rows.length + " calibrations shown";
  }

  ["f-dt", "f-mode", "f-fw", "f-prec", "f-sup"].forEach(function (id) { $(id).addEventListener("change", render); });
  $("f-text").addEventListener("input", render);
  render();
})();

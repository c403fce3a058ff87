/* hwcal site compare view: B against A with the rule of hwcal-compare (compare_calibrations.compare):
   noise = max(floor, k * hypot(se_A, se_B)) where both files carry a cv (se = cv / sqrt(rounds), computed
   by the site builder with compare's own peak_noise / bandwidth_noise); a difference is "within noise" when
   |ln(B/A)| <= noise. Each hardware's inputs load on demand from data/cmp/<type>__<id>.js (works on file://). */
(function () {
  "use strict";
  var data = window.HWCAL_INDEX;
  if (!data) { return; }
  var F = data.fields, FLOOR = data.noise_floor;
  var rows = data.rows.map(function (a) {
    var r = {};
    F.forEach(function (f, i) { r[f] = a[i]; });
    return r;
  });
  var byPage = {};
  rows.forEach(function (r) { byPage[r.page] = r; });
  var loaded = {}, pending = {};
  var $ = function (id) { return document.getElementById(id); };

  window.HWCAL_COMPARE_LOADED = function (hw, inputs) {
    loaded[hw] = inputs;
    (pending[hw] || []).forEach(function (f) { f(); });
    delete pending[hw];
  };
  function load(r, done) {
    var hw = r.dt + "__" + r.hw;
    if (loaded[hw]) { done(); return; }
    if (pending[hw]) { pending[hw].push(done); return; }
    pending[hw] = [done];
    var s = document.createElement("script");
    s.src = "data/cmp/" + encodeURIComponent(hw) + ".js";
    s.onerror = function () { $("cmp-out").textContent = "the compare data of " + r.hw + " is missing; rebuild the site"; };
    document.head.appendChild(s);
  }
  function inputsOf(r) { return loaded[r.dt + "__" + r.hw][r.page]; }

  function label(r) {
    return r.mode + " · " + r.freq + " MHz · " + r.fw + " · " + String(r.date).slice(0, 16).replace("T", " ") +
      (r.sup ? " (superseded)" : "");
  }
  ["cmp-a", "cmp-b"].forEach(function (id) {
    var sel = $(id), groups = {};
    rows.forEach(function (r) {
      var g = r.dt + " / " + r.hw;
      if (!groups[g]) {
        groups[g] = document.createElement("optgroup");
        groups[g].label = g;
        sel.appendChild(groups[g]);
      }
      var o = document.createElement("option");
      o.value = r.page;
      o.textContent = label(r);
      groups[g].appendChild(o);
    });
  });

  var ORDER = data.precisions;
  var CANON = ["fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "fp8_e5m2", "int64", "int32", "int16", "int8"];
  function rank(p) { var i = CANON.indexOf(p); return i < 0 ? 100 : i; }

  function verdict(a, b, noise) {
    if (a === null && b === null) { return [null, "-"]; }
    if (a === null) { return [null, "new in B"]; }
    if (b === null) { return [null, "missing in B"]; }
    if (a === 0) { return [null, "A is zero"]; }
    var ratio = b / a;
    if (ratio > 0 && noise !== null && Math.abs(Math.log(ratio)) <= noise) { return [ratio, "within noise"]; }
    var word = ratio > 1 ? "faster" : ratio < 1 ? "slower" : "same";
    return [ratio, word + (noise === null && word !== "same" ? " (noise unknown)" : "")];
  }
  function noiseOf(sa, sb, k) {
    return sa !== null && sa !== undefined && sb !== null && sb !== undefined ? Math.max(FLOOR, k * Math.hypot(sa, sb)) : null;
  }
  /* One row per precision either measured (canonical order), then the bandwidth: compare()'s rows. */
  function compareRows(A, B, k) {
    var names = {}, out = [];
    [A, B].forEach(function (X) {
      Object.keys(X.p).forEach(function (p) { if (X.p[p][0] !== null) { names[p] = true; } });
    });
    Object.keys(names).sort(function (x, y) { return rank(x) - rank(y) || (x < y ? -1 : 1); }).forEach(function (p) {
      var a = A.p[p] || [null, null, null, null], b = B.p[p] || [null, null, null, null];
      var n = noiseOf(a[2], b[2], k), v = verdict(a[0], b[0], n);
      out.push({ metric: p, unit: p.indexOf("int") === 0 ? "GOPS" : "GFLOPS", a: a[0], b: b[0], ratio: v[0],
                 efficiency_a: a[1], efficiency_b: b[1], noise: n, verdict: v[1] });
    });
    if (A.bw[0] !== null || B.bw[0] !== null) {
      var n = noiseOf(A.bw[2], B.bw[2], k), v = verdict(A.bw[0], B.bw[0], n);
      out.push({ metric: "bandwidth", unit: "GB/s", a: A.bw[0], b: B.bw[0], ratio: v[0], efficiency_a: A.bw[1],
                 efficiency_b: B.bw[1], noise: n, verdict: v[1] });
    }
    return out;
  }
  window.HWCAL_COMPARE_ROWS = compareRows;

  function fmt(v, digits) {
    if (v === null || v === undefined) { return "-"; }
    return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(digits || 4)));
  }
  function show() {
    var ra = byPage[$("cmp-a").value], rb = byPage[$("cmp-b").value];
    if (!ra || !rb) { return; }
    var k = parseFloat($("cmp-k").value);
    if (!(k > 0)) { k = 3; }
    load(ra, function () { load(rb, function () {
      var out = compareRows(inputsOf(ra), inputsOf(rb), k);
      $("cmp-desc").textContent = "A: " + ra.hw + " " + label(ra) + " — B: " + rb.hw + " " + label(rb);
      var box = document.createElement("div");
      box.className = "scroll";
      var t = document.createElement("table");
      t.id = "cmp-table";
      var cap = document.createElement("caption");
      cap.textContent = "B against A";
      t.appendChild(cap);
      var head = t.createTHead().insertRow();
      ["metric", "unit", "A", "B", "B/A", "eff A", "eff B", "noise ±", "verdict"].forEach(function (h, i) {
        var th = document.createElement("th");
        th.scope = "col";
        th.textContent = h;
        if (i >= 2 && i <= 7) { th.className = "num"; }
        head.appendChild(th);
      });
      var body = t.createTBody();
      out.forEach(function (r) {
        var tr = body.insertRow();
        tr.setAttribute("data-metric", r.metric);
        var th = document.createElement("th");
        th.scope = "row";
        th.textContent = r.metric;
        tr.appendChild(th);
        var cells = [["unit", r.unit, null], ["a", fmt(r.a), r.a], ["b", fmt(r.b), r.b],
                     ["ratio", r.ratio === null ? "-" : r.ratio.toFixed(3), r.ratio],
                     ["efficiency_a", r.efficiency_a === null || r.efficiency_a === undefined ? "-" : r.efficiency_a.toFixed(2), r.efficiency_a],
                     ["efficiency_b", r.efficiency_b === null || r.efficiency_b === undefined ? "-" : r.efficiency_b.toFixed(2), r.efficiency_b],
                     ["noise", r.noise === null ? "?" : (100 * r.noise).toFixed(1) + "%", r.noise],
                     ["verdict", r.verdict, null]];
        cells.forEach(function (c, i) {
          var td = tr.insertCell();
          td.textContent = c[1];
          td.setAttribute("data-field", c[0]);
          if (c[2] !== null && c[2] !== undefined) { td.setAttribute("data-value", String(c[2])); }
          if (i >= 1 && i <= 6) { td.className = "num"; }
          if (c[0] === "verdict" && r.ratio !== null && r.ratio < 1 && r.verdict !== "within noise") { td.className = "bad"; }
        });
      });
      box.appendChild(t);
      var target = $("cmp-out");
      target.textContent = "";
      target.appendChild(box);
      var q = "?a=" + encodeURIComponent(ra.page) + "&b=" + encodeURIComponent(rb.page);
      if (window.history && window.history.replaceState) {
        try { window.history.replaceState(null, "", q); } catch (e) { /* file:// in some browsers */ }
      }
    }); });
  }

  var params = new URLSearchParams(window.location.search);
  var a = params.get("a"), b = params.get("b");
  if (!byPage[a]) { a = rows.length ? rows[0].page : null; }
  if (!byPage[b]) {
    var ra = byPage[a];
    var same = rows.filter(function (r) { return ra && r.hw === ra.hw && r.page !== a; });
    b = same.length ? same[0].page : (rows.length > 1 ? rows[1].page : a);
  }
  if (a) { $("cmp-a").value = a; }
  if (b) { $("cmp-b").value = b; }
  ["cmp-a", "cmp-b", "cmp-k"].forEach(function (id) { $(id).addEventListener("change", show); });
  show();
})();

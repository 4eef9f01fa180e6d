// Footprint live page: reads /api/v1/summary and /api/v1/history and redraws the numbers and charts
// that page.py rendered on the server (same ids, same formats as page.py's fmt, clock and chart).
// Written for this project; no libraries. Text from the API only ever goes into textContent.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var W = 600, H = 140;
  var PROV = {
    measured: "measured (hardware energy counter)",
    integrated: "integrated (measured power x time)",
    estimated: "estimated (model, not a meter)",
    computed: "computed (energy x PUE x grid intensity)",
    configured: "configured"
  };
  var EMBODIED = "estimated (manufacturing figures amortised over the lifetime)";
  var body = document.body;
  var step = Number(body.dataset.step);
  // One refresh a sample (1 s to 15 s); ?refresh=SECONDS asks for another pace (at least 0.1 s).
  var asked = Number(new URLSearchParams(location.search).get("refresh"));
  var every = asked >= 0.1 ? asked * 1000 : Math.min(Math.max(Number(body.dataset.interval) * 1000, 1000), 15000);

  function fmt(v, unit) {
    if (v === null || v === undefined || !isFinite(v)) return "\u2014";
    switch (unit) {
      case "W": return v.toFixed(1) + " W";
      case "J":
        if (v < 3600) return v.toFixed(1) + " J";
        if (v < 3.6e6) return (v / 3600).toFixed(2) + " Wh";
        return (v / 3.6e6).toFixed(3) + " kWh";
      case "g":
        if (v > 0 && v < 0.001) return (v * 1000).toFixed(3) + " mgCO2e";
        if (v < 1) return v.toFixed(4) + " gCO2e";
        if (v < 1000) return v.toFixed(2) + " gCO2e";
        return (v / 1000).toFixed(3) + " kgCO2e";
      case "gkwh": return v.toFixed(1) + " gCO2e/kWh";
      case "ratio": return (v * 100).toFixed(1) + " %";
      case "pue": return v.toFixed(2);
      case "s":
        if (v < 10) return v.toFixed(1) + " s";
        if (v < 120) return v.toFixed(0) + " s";
        if (v < 7200) return (v / 60).toFixed(0) + " min";
        return (v / 3600).toFixed(1) + " h";
    }
    throw new Error("unknown unit " + unit);
  }

  function clock(ts, seconds) {
    if (ts === null || ts === undefined) return "\u2014";
    var iso = new Date(ts * 1000).toISOString();
    return seconds ? iso.slice(11, 19) + " UTC" : iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC";
  }

  function el(tag, attrs, text) {
    var node = tag.indexOf("svg:") === 0 ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function number(id, value, unit) {
    var node = el("data", { id: id, value: value === null || value === undefined ? "" : String(value),
                            "data-unit": unit }, fmt(value, unit));
    return node;
  }

  function setNumber(id, value) {
    var node = document.getElementById(id);
    if (!node) return;
    node.value = value === null || value === undefined ? "" : String(value);
    node.textContent = fmt(value, node.dataset.unit);
  }

  function setText(id, value) {
    var node = document.getElementById(id);
    if (node) node.textContent = value === null || value === undefined || value === "" ? "\u2014" : String(value);
  }

  function setProv(id, what, label) {
    var node = document.getElementById(id);
    if (!node) return;
    node.textContent = label || PROV[what] || what || "\u2014";
    node.className = "prov prov-" + (what || "none");
  }

  function niceCeiling(v) {
    if (!isFinite(v) || v <= 1) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var ms = [1, 2, 5, 10];
    for (var i = 0; i < ms.length; i++) if (v <= ms[i] * p) return ms[i] * p;
    return 10 * p;
  }

  // One power series over the history window, right-aligned: the step in progress is at "now".
  function drawChart(svg, label, values) {
    var known = values.filter(function (v) { return v !== null; });
    var top = niceCeiling(known.length ? Math.max.apply(null, known) : 0);
    while (svg.lastChild) svg.removeChild(svg.lastChild);
    var span = fmt(Math.max(values.length, 1) * step, "s");  // the window held so far: up to `points` steps
    var summary = label + " over the last " + span + ": " + known.length + " points, highest " +
      fmt(known.length ? Math.max.apply(null, known) : null, "W") + ", latest " +
      (known.length ? fmt(known[known.length - 1], "W") : "no data");
    svg.appendChild(el("svg:title", {}, summary));
    svg.appendChild(el("svg:line", { "class": "axis", x1: 0, y1: H, x2: W, y2: H }));
    var segment = [];
    var all = values.concat([null]);
    for (var i = 0; i < all.length; i++) {
      var v = all[i];
      if (v !== null) {
        var x = (i + 0.5) / values.length * W;
        segment.push(x.toFixed(1) + "," + (H - v / top * H).toFixed(1));
        continue;
      }
      if (segment.length === 1) {
        var xy = segment[0].split(",");
        svg.appendChild(el("svg:circle", { cx: xy[0], cy: xy[1], r: 3 }));
      } else if (segment.length) {
        svg.appendChild(el("svg:polyline", { points: segment.join(" ") }));
      }
      segment = [];
    }
    svg.setAttribute("aria-label", summary);
    svg.setAttribute("data-points", String(known.length));
    svg.setAttribute("data-top", String(top));
    var scale = svg.nextElementSibling;
    if (scale && scale.classList.contains("scale")) {
      scale.children[0].textContent = "\u2212" + span;
      scale.children[1].textContent = "top " + fmt(top, "W");
    }
  }

  function chartFigure(id, caption, device) {
    var fig = el("figure", { "data-device": device });
    fig.appendChild(el("figcaption", {}, caption));
    var svg = el("svg:svg", { id: id, "class": "chart", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none",
                              role: "img" });
    fig.appendChild(svg);
    var scale = el("div", { "class": "scale", "aria-hidden": "true" });
    scale.appendChild(el("span", {}, ""));
    scale.appendChild(el("span", {}, ""));
    scale.appendChild(el("span", {}, "now"));
    fig.appendChild(scale);
    return fig;
  }

  function name(d) { return d.component + " " + d.device; }
  function seriesId(d) { return d.component + "/" + d.device + "/" + d.source; }

  function showHistory(h) {
    drawChart(document.getElementById("chart-node"), "Node power", h.node);
    var box = document.getElementById("device-charts");
    var want = h.devices.map(function (d) { return name(d) + " (" + d.source + "), watts"; });
    var have = Array.prototype.map.call(box.querySelectorAll("figcaption"), function (c) { return c.textContent; });
    if (want.join("\n") !== have.join("\n")) {
      while (box.lastChild) box.removeChild(box.lastChild);
      want.forEach(function (caption, i) {
        box.appendChild(chartFigure("chart-dev-" + i, caption, seriesId(h.devices[i])));
      });
    }
    h.devices.forEach(function (d, i) {
      drawChart(document.getElementById("chart-dev-" + i), name(d) + " power", d.watts);
    });
  }

  function replaceRows(tbody, rows) {
    while (tbody.lastChild) tbody.removeChild(tbody.lastChild);
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function row(head, extra, cells) {
    var tr = el("tr");
    var th = el("th", { scope: "row" }, head);
    if (extra) th.appendChild(el("span", { "class": "model" }, extra));
    tr.appendChild(th);
    cells.forEach(function (c) { var td = el("td"); c.forEach(function (n) { td.appendChild(n); }); tr.appendChild(td); });
    return tr;
  }

  function showPower(p) {
    setNumber("node-watts", p ? p.node_watts : null);
    setProv("node-prov", p ? p.node_provenance : null);
    var rows = (p ? p.devices : []).map(function (d, i) {
      var prov = el("span", { id: "dev-" + i + "-prov" });
      var cells = [[number("dev-" + i + "-watts", d.watts, "W")],
                   [document.createTextNode(d.source + ": "), prov].concat(
                     d.up ? [] : [document.createTextNode(" (down)")])];
      var tr = row(name(d), d.model, cells);
      tr.setAttribute("data-device", seriesId(d));
      prov.className = "prov prov-" + d.provenance;
      prov.textContent = PROV[d.provenance] || d.provenance;
      return tr;
    });
    replaceRows(document.querySelector("#devices tbody"), rows);
  }

  function showEnergy(e) {
    ["since_start", "today", "lifetime"].forEach(function (k) {
      var t = e ? e[k] : null;
      setText(k + "-since", t ? clock(t.since, false) : null);
      setNumber(k + "-energy", t ? t.energy_joules : null);
      setNumber(k + "-grams", t ? t.emissions_grams : null);
    });
  }

  function showGrid(g) {
    setNumber("grid-value", g.value);
    setText("grid-provider", g.provider);
    setText("grid-signal", g.signal);
    setText("grid-zone", g.zone);
    setText("grid-estimated", g.estimated ? "estimated by the source" : "reported by the source");
    setNumber("grid-age", g.age_seconds);
    setText("grid-fallback", g.fallback_active ? "active: not the first provider" : "not active");
    setNumber("grid-marginal", g.marginal ? g.marginal.value : null);
    var chain = document.getElementById("grid-chain");
    replaceRows(chain, g.chain.map(function (s) {
      return el("li", {}, s.provider + " (" + s.signal + "): " + (s.up ? "up" : "down") +
        (s.last_error ? " \u2014 " + s.last_error : ""));
    }));
    var f = g.forecast, green = f.greenest;
    setNumber("green-value", green ? green.value : null);
    setText("green-start", green ? clock(green.start, false) : null);
    setText("forecast-provider", f.provider);
    var svg = document.getElementById("chart-forecast");
    while (svg.lastChild) svg.removeChild(svg.lastChild);
    svg.setAttribute("viewBox", "0 0 " + W + " 100");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("data-points", String(f.points.length));
    if (!f.points.length) { svg.setAttribute("aria-label", "No forecast from the provider in use"); return; }
    var top = niceCeiling(Math.max.apply(null, f.points.map(function (p) { return p.value; })));
    var width = W / f.points.length;
    f.points.forEach(function (p, i) {
      var h = p.value / top * 100;
      var attrs = { x: (i * width).toFixed(1), y: (100 - h).toFixed(1), width: Math.max(width - 1, 1).toFixed(1),
                    height: h.toFixed(1) };
      if (green && p.start === green.start) attrs["class"] = "green";
      var bar = el("svg:rect", attrs);
      bar.appendChild(el("svg:title", {}, clock(p.start, false) + ": " + fmt(p.value, "gkwh")));
      svg.appendChild(bar);
    });
    svg.setAttribute("aria-label", "Forecast, " + f.points.length + " points; lowest " +
      fmt(green ? green.value : null, "gkwh"));
  }

  function showFacility(s) {
    setNumber("pue", s.pue.ratio);
    var e = s.embodied;
    setNumber("embodied-grams", e ? e.grams_total : null);
    setProv("embodied-prov", e ? e.provenance : null, EMBODIED);
    setNumber("embodied-share", e ? e.share : null);
  }

  function showWorkloads(w) {
    var section = document.getElementById("workloads");
    section.hidden = !w.enabled;
    if (!w.enabled) return;
    setText("wl-shown", w.top.length);
    setText("wl-count", w.count);
    replaceRows(document.getElementById("wl-rows"), w.top.map(function (x, i) {
      return row((x.namespace ? x.namespace + "/" : "") + (x.pod || x.workload), x.container,
        [[number("wl-" + i + "-energy", x.energy_joules, "J")], [number("wl-" + i + "-grams", x.emissions_grams, "g")]]);
    }));
  }

  function showRuns(r) {
    document.getElementById("runs").hidden = !r.enabled;
    if (!r.enabled) return;
    document.getElementById("runs-note").textContent = r.error || (r.skipped ? r.skipped + " unreadable rows skipped" : "");
    replaceRows(document.getElementById("run-rows"), r.runs.map(function (x, i) {
      return row(x.run_id, x.started_at || "", [[number("run-" + i + "-duration", x.duration_seconds, "s")],
        [number("run-" + i + "-energy", x.energy_joules, "J")], [number("run-" + i + "-grams", x.emissions_grams, "g")]]);
    }));
  }

  function show(s) {
    showPower(s.power);
    showEnergy(s.energy);
    showGrid(s.grid);
    showFacility(s);
    showWorkloads(s.workloads);
    showRuns(s.runs);
    body.dataset.sample = s.sample ? String(s.sample.number) : "";
    setText("status", s.sample ? "Sample " + s.sample.number + " at " + clock(s.sample.at, true) + " (live)" :
      "Waiting for the first sample");
  }

  function get(path) {
    return fetch(path, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }

  function tick() {
    // Relative URLs: the page also works under a reverse proxy's path prefix.
    Promise.all([get("api/v1/summary"), get("api/v1/history")]).then(function (both) {
      show(both[0]);
      showHistory(both[1]);
      body.dataset.live = "1";
    }).catch(function (err) {
      body.dataset.live = "0";
      setText("status", "Not updating (" + err.message + "); retrying");
    }).then(function () { setTimeout(tick, every); });
  }

  // For the browser test: the page's formatting, to compare with page.py's.
  window.footprintFormat = fmt;
  tick();
})();

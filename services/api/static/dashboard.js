// dealwatch dashboard: reads /api/stats and /api/operations with the token kept in sessionStorage, draws an
// SVG chart and tables, and refreshes itself. No library, no build; text is set with textContent only.
(function () {
  "use strict";

  var TOKEN_KEY = "dealwatch.apiToken";
  var REFRESH_MS = 1000 * Math.max(2, Number(new URLSearchParams(window.location.search).get("refresh")) || 10);
  var SVG = "http://www.w3.org/2000/svg";
  var CAUSES = ["competitor", "budget", "staff_change", "policy_change", "needs_change", "external",
    "internal_resources", "no_response", "follow_up_lapsed", "unknown"];
  var COLORS = ["#d1495b", "#edae49", "#00798c", "#30638e", "#8d6a9f", "#6a994e", "#bc6c25", "#577590",
    "#e76f51", "#9aa5b1"];
  var SPAN = { day: 30, week: 26, month: 12 };
  var timer = null;
  var refreshes = 0;

  function $(id) { return document.getElementById(id); }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function showLogin(message) {
    $("board").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("status").textContent = "waiting for a token";
    if (timer) { clearTimeout(timer); timer = null; }
  }

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("forget").hidden = false;
  }

  function Unauthorized(status) { this.status = status; }

  function get(path) {
    return fetch(path, { headers: { "Authorization": "Bearer " + token(), "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) { throw new Unauthorized(response.status); }
        if (!response.ok) { throw new Error(path + " answered " + response.status); }
        return response.json();
      });
  }

  // Buckets as the stats worker names them: 2026-11-02, 2026-W45, 2026-11.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function dayName(d) { return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()); }
  function isoWeek(d) {
    var t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
    var day = (t.getDay() + 6) % 7;
    t.setDate(t.getDate() - day + 3);
    var firstThursday = new Date(t.getFullYear(), 0, 4);
    var week = 1 + Math.round(((t - firstThursday) / 86400000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
    return t.getFullYear() + "-W" + pad(week);
  }
  function bucketsBack(period, count) {
    var out = [];
    var now = new Date();
    for (var i = count - 1; i >= 0; i--) {
      var d = new Date(now.getFullYear(), now.getMonth(), now.getDate());
      if (period === "day") { d.setDate(d.getDate() - i); out.push(dayName(d)); }
      else if (period === "week") { d.setDate(d.getDate() - 7 * i); out.push(isoWeek(d)); }
      else { d = new Date(now.getFullYear(), now.getMonth() - i, 1); out.push(d.getFullYear() + "-" + pad(d.getMonth() + 1)); }
    }
    return out;
  }
  function sinceDate(period) {
    var d = new Date();
    if (period === "day") { d.setDate(d.getDate() - (SPAN.day - 1)); }
    else if (period === "week") { d.setDate(d.getDate() - 7 * (SPAN.week - 1)); }
    else { d = new Date(d.getFullYear(), d.getMonth() - (SPAN.month - 1), 1); }
    return dayName(d);
  }

  function percent(rate) { return rate === null || rate === undefined ? "–" : Math.round(rate * 100) + " %"; }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    if (seconds < 90) { return Math.round(seconds) + " s"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 172800) { return (seconds / 3600).toFixed(1) + " h"; }
    return (seconds / 86400).toFixed(1) + " d";
  }
  function number(n) { return (n || 0).toLocaleString("en"); }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }
  function fill(tableId, rows, columns, emptyText) {
    var body = $(tableId).tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = columns;
      td.className = "empty";
      td.textContent = emptyText;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (values) {
      var tr = document.createElement("tr");
      values.forEach(function (v) {
        if (v && typeof v === "object") { cell(tr, v.text, v.cls); } else { cell(tr, v, typeof v === "number" ? "num" : ""); }
      });
      body.appendChild(tr);
    });
  }
  function num(text, bad) { return { text: text, cls: bad ? "num bad" : "num" }; }

  function svg(name, attrs, parent) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(el); }
    return el;
  }

  function drawChart(stats, period) {
    var chart = $("chart");
    while (chart.firstChild) { chart.removeChild(chart.firstChild); }
    var buckets = bucketsBack(period, SPAN[period]);
    var byBucket = {};
    buckets.forEach(function (b) { byBucket[b] = {}; });
    var seen = {};
    stats.items.forEach(function (item) {
      var b = item.group.period, c = item.group.cause, n = item.counts.interruptions;
      if (!n) { return; }
      if (!(b in byBucket)) { byBucket[b] = {}; buckets.push(b); }
      byBucket[b][c] = (byBucket[b][c] || 0) + n;
      seen[c] = true;
    });
    buckets.sort();
    var width = chart.clientWidth || 900, height = chart.clientHeight || 300;
    var left = 36, right = 8, top = 10, bottom = 34;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    var max = 1;
    buckets.forEach(function (b) {
      var total = 0;
      Object.keys(byBucket[b]).forEach(function (c) { total += byBucket[b][c]; });
      max = Math.max(max, total);
    });
    var plotH = height - top - bottom, slot = (width - left - right) / buckets.length;
    var step = Math.max(1, Math.ceil(max / 5));
    for (var v = 0; v <= max; v += step) {
      var y = top + plotH - (v / max) * plotH;
      svg("line", { x1: left, x2: width - right, y1: y, y2: y, stroke: "#e3e6eb" }, chart);
      var label = svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7585" }, chart);
      label.textContent = String(v);
    }
    var every = Math.ceil(buckets.length / 10);
    buckets.forEach(function (b, i) {
      var x = left + i * slot, base = top + plotH;
      CAUSES.forEach(function (c, ci) {
        var n = byBucket[b][c] || 0;
        if (!n) { return; }
        var h = (n / max) * plotH;
        base -= h;
        var rect = svg("rect", {
          "class": "bar", x: x + slot * 0.15, y: base, width: Math.max(1, slot * 0.7), height: h,
          fill: COLORS[ci], "data-cause": c, "data-bucket": b, "data-count": n
        }, chart);
        svg("title", {}, rect).textContent = b + " · " + c + ": " + n;
      });
      if (i % every === 0) {
        var t = svg("text", { x: x + slot / 2, y: height - bottom + 16, "text-anchor": "middle", "font-size": 11,
          fill: "#6b7585" }, chart);
        t.textContent = period === "day" ? b.slice(5) : b;
      }
    });
    var legend = $("legend");
    while (legend.firstChild) { legend.removeChild(legend.firstChild); }
    CAUSES.forEach(function (c, ci) {
      if (!seen[c]) { return; }
      var s = document.createElement("span");
      s.style.setProperty("--c", COLORS[ci]);
      s.textContent = c;
      legend.appendChild(s);
    });
    if (!Object.keys(seen).length) {
      var none = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#6b7585" }, chart);
      none.textContent = "no interruptions in this range yet";
    }
  }

  function render(byTime, byCause, byKind, ops, period) {
    var t = byTime.totals;
    $("k-interruptions").textContent = number(t.counts.interruptions);
    $("k-recovered").textContent = percent(t.rates.recovered);
    $("k-response").textContent = duration(t.averages.first_response_seconds);
    $("k-handover").textContent = percent(t.rates.handover_completion);
    $("k-lost").textContent = percent(t.rates.lost_reason_disagreement);
    var status = ops.tasks_by_status;
    $("k-open").textContent = number((status.open || 0) + (status.in_progress || 0));
    $("k-overdue").textContent = number(ops.overdue_tasks);
    $("k-overdue").className = "value" + (ops.overdue_tasks ? " bad" : "");
    var lagTotal = ops.lag.reduce(function (s, p) { return s + p.lag; }, 0);
    $("k-lag").textContent = ops.broker === "ok" ? number(lagTotal) : ops.broker.replace("_", " ");

    drawChart(byTime, period);

    fill("cause-table", byCause.items.filter(function (i) { return i.counts.interruptions; }).map(function (i) {
      return [i.group.cause, num(number(i.counts.interruptions)), num(percent(i.rates.recovered)),
        num(percent(i.rates.resumed)), num(percent(i.rates.tasks_done)),
        num(number(i.counts.task_overdue), i.counts.task_overdue > 0), num(duration(i.averages.first_response_seconds))];
    }), 7, "no interruptions yet");

    fill("kind-table", byKind.items.filter(function (i) { return i.counts.interruptions; }).map(function (i) {
      return [i.group.kind, num(number(i.counts.interruptions)), num(percent(i.rates.recovered)),
        num(i.counts.handovers ? percent(i.rates.handover_completion) : "–"),
        num(i.counts.lost_reason_known ? percent(i.rates.lost_reason_disagreement) : "–")];
    }), 5, "no interruptions yet");

    var order = ["open", "in_progress", "snoozed", "done", "dismissed"];
    fill("task-table", order.filter(function (s) { return status[s]; }).map(function (s) {
      return [s, num(number(status[s]))];
    }).concat([["overdue (open or in progress, past due)", num(number(ops.overdue_tasks), ops.overdue_tasks > 0)]]),
    2, "no tasks yet");

    fill("overdue-table", ops.oldest_overdue.map(function (task) {
      return [{ text: task.due_at.slice(0, 16).replace("T", " "), cls: "bad" }, task.deal_id, task.title,
        task.assignee || "–"];
    }), 4, "nothing overdue");

    var lagRows = {};
    ops.lag.forEach(function (p) {
      var key = p.group + "\u0000" + p.topic;
      var row = lagRows[key] || (lagRows[key] = { group: p.group, topic: p.topic, committed: 0, end: 0, lag: 0 });
      row.committed += p.committed; row.end += p.end; row.lag += p.lag;
    });
    fill("lag-table", Object.keys(lagRows).sort().map(function (k) {
      var r = lagRows[k];
      return [r.group, r.topic, num(number(r.committed)), num(number(r.end)), num(number(r.lag), r.lag > 0)];
    }), 5, ops.broker === "ok" ? "no consumer group has committed yet" : "broker " + ops.broker.replace("_", " "));

    fill("topic-table", ops.topics.map(function (topic) {
      return [topic.topic, num(number(topic.partitions)), num(number(topic.end_offsets))];
    }), 3, ops.broker === "ok" ? "no topics" : "broker " + ops.broker.replace("_", " "));
  }

  function refresh() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (!token()) { showLogin(); return; }
    var period = $("period").value;
    var range = "&period=" + period + "&since=" + sinceDate(period);
    Promise.all([
      get("/api/stats?group_by=period,cause" + range),
      get("/api/stats?group_by=cause" + range),
      get("/api/stats?group_by=kind" + range),
      get("/api/operations")
    ]).then(function (answers) {
      showBoard();
      render(answers[0], answers[1], answers[2], answers[3], period);
      $("status").textContent = "updated " + new Date().toLocaleTimeString() + " · refreshes every " +
        REFRESH_MS / 1000 + " s";
      document.body.setAttribute("data-loaded", "true");
      refreshes += 1;
      document.body.setAttribute("data-refreshes", String(refreshes));
    }).catch(function (error) {
      if (error instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(error.status === 403 ? "This token lacks the read scope." : "The token was not accepted.");
        return;
      }
      $("status").textContent = "refresh failed (" + error.message + "); trying again";
    }).then(function () {
      if (token()) { timer = setTimeout(refresh, REFRESH_MS); }
    });
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    var value = $("token").value.trim();
    if (!value) { return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin();
  });
  $("period").addEventListener("change", refresh);
  window.addEventListener("resize", function () { if (token()) { refresh(); } });

  // A token may also be handed over once in the fragment (#token=...), which never reaches the server;
  // it is moved to sessionStorage and removed from the address bar.
  var match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  refresh();
})();

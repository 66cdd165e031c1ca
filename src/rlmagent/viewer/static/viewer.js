/* rlmagent trajectory viewer: renders the JSON embedded in #rlm-data. No dependencies.
 *
 * Large runs stay usable because nothing is built before it is looked at: turns, sub-call
 * lists and sub-calls are <details> elements filled the first time they open, sub-call
 * lists render PAGE items at a time, and long texts show LIMIT characters until asked. */
(function () {
  "use strict";

  var LIMIT = 2000;
  var PAGE = 100;
  var DATA = JSON.parse(document.getElementById("rlm-data").textContent);
  var CALLS = DATA.calls;
  var RUNS = {};
  DATA.runs.forEach(function (r) { RUNS[r.id] = r; });
  var WHERE = []; // call index -> {run, turn, cell} (cell null for calls outside cells)
  DATA.runs.forEach(function (run) {
    run.turns.forEach(function (turn) {
      turn.cells.forEach(function (cell) {
        cell.calls.forEach(function (i) { WHERE[i] = { run: run, turn: turn, cell: cell }; });
      });
    });
    run.loose.forEach(function (i) { WHERE[i] = { run: run, turn: null, cell: null }; });
  });
  var T0 = DATA.t0;

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") node.textContent = v;
        else if (k === "cls") node.className = v;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function int(n) { return (n || 0).toLocaleString("en-US"); }
  function cost(c) { return c === null || c === undefined ? "cost unknown" : "$" + (c < 1 ? c.toFixed(4) : c.toFixed(2)); }
  function secs(s) {
    if (s === null || s === undefined) return "–";
    return s < 1 ? Math.round(s * 1000) + " ms" : s < 120 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
  }
  function plural(n, word) { return int(n) + " " + word + (n === 1 ? "" : "s"); }
  function oneLine(text, n) {
    var t = (text || "").replace(/\s+/g, " ").trim();
    return t.length > n ? t.slice(0, n - 1) + "…" : t;
  }
  function usageText(u) {
    return int(u.calls) + " calls · " + int(u.prompt_tokens + u.completion_tokens) + " tokens · " + cost(u.cost_usd);
  }

  /* A <pre> showing at most LIMIT characters, with a button to show the rest. */
  function textBlock(text, cls) {
    text = text === null || text === undefined ? "" : String(text);
    var pre = el("pre", { cls: cls || "" });
    var box = el("div", { cls: "box" }, pre);
    if (text.length <= LIMIT) {
      pre.textContent = text || "(empty)";
      if (!text) pre.classList.add("muted");
      return box;
    }
    pre.textContent = text.slice(0, LIMIT) + "…";
    var btn = el("button", {
      cls: "more show-all",
      text: "show all (" + int(text.length) + " characters)",
      onclick: function () { pre.textContent = text; btn.remove(); }
    });
    box.appendChild(btn);
    return box;
  }

  /* A <details> whose body is built by fill(body) the first time it opens. */
  function lazy(cls, summary, fill) {
    var d = el("details", { cls: cls });
    // build on the click itself (toggle events come later, asynchronously)
    d.appendChild(el("summary", { onclick: function () { d._fill(); } }, summary));
    var body = el("div", { cls: "body" });
    d.appendChild(body);
    d._fill = function () {
      if (d._filled) return;
      d._filled = true;
      fill(body);
    };
    d.addEventListener("toggle", function () { if (d.open) d._fill(); });
    return d;
  }
  function openNow(d) { d.open = true; d._fill(); }

  // ------------------------------------------------------------------ Python highlighting

  var KW = {}, BI = {}, RLM = {};
  ("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try while " +
    "with yield match case").split(" ").forEach(function (w) { KW[w] = 1; });
  ("print len range str int float list dict set tuple sorted enumerate zip map filter sum min max " +
    "any all open isinstance type abs round reversed repr bool format divmod iter next hasattr " +
    "getattr setattr ValueError TypeError KeyError IndexError Exception re json math collections")
    .split(" ").forEach(function (w) { BI[w] = 1; });
  "llm_query llm_batch FINAL FINAL_VAR SHOW_VARS context".split(" ").forEach(function (w) { RLM[w] = 1; });
  var TOKEN = new RegExp([
    "(#[^\\n]*)",
    "((?:[rRbBuUfF]{1,2})?(?:\"\"\"[\\s\\S]*?(?:\"\"\"|$)|'''[\\s\\S]*?(?:'''|$)|\"(?:\\\\.|[^\"\\\\\\n])*\"?|'(?:\\\\.|[^'\\\\\\n])*'?))",
    "(\\b(?:0[xXoObB][0-9a-fA-F_]+|\\d[\\d_]*(?:\\.[\\d_]*)?(?:[eE][+-]?\\d+)?j?)\\b)",
    "([A-Za-z_][A-Za-z0-9_]*)"
  ].join("|"), "g");

  function highlight(code) {
    var frag = document.createDocumentFragment();
    var last = 0, m, prevWord = "";
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(code)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(code.slice(last, m.index)));
      var cls = null;
      if (m[1] !== undefined) cls = "tk-com";
      else if (m[2] !== undefined) cls = "tk-str";
      else if (m[3] !== undefined) cls = "tk-num";
      else if (KW[m[4]]) cls = "tk-kw";
      else if (RLM[m[4]]) cls = "tk-rlm";
      else if (prevWord === "def" || prevWord === "class") cls = "tk-fn";
      else if (BI[m[4]]) cls = "tk-bi";
      frag.appendChild(cls ? el("span", { cls: cls, text: m[0] }) : document.createTextNode(m[0]));
      prevWord = m[4] !== undefined ? m[4] : "";
      last = TOKEN.lastIndex;
      if (m[0].length === 0) TOKEN.lastIndex++;
    }
    if (last < code.length) frag.appendChild(document.createTextNode(code.slice(last)));
    return frag;
  }

  // ------------------------------------------------------------------ sub-calls

  function callStatus(c) {
    if (!c.done) return { cls: "pending", icon: "…", text: "unfinished" };
    if (c.error) return { cls: "err", icon: "✗", text: "failed" };
    return { cls: "", icon: "✓", text: c.cached ? "cached" : "ok" };
  }

  function renderCall(i) {
    var c = CALLS[i];
    var st = callStatus(c);
    var head = el("span", { cls: "head" },
      st.icon + " " + c.id + " · " + c.model + " · " + int(c.pt + c.ct) + " tok · " + secs(c.latency) +
      (c.child ? " · child run" : "") + " · ");
    var d = lazy("call " + st.cls, el("span", null, head, oneLine(c.prompt, 140)), function (body) {
      body.appendChild(el("div", null, el("div", { cls: "muted", text: "Prompt (" + plural(c.prompt.length, "char") + ")" }), textBlock(c.prompt, "prompt")));
      var right = el("div");
      if (c.error) {
        right.appendChild(el("div", { cls: "muted", text: "Error" }));
        right.appendChild(textBlock(c.error, "errtext"));
      }
      if (c.answer !== null) {
        right.appendChild(el("div", { cls: "muted", text: "Answer (" + plural(c.answer.length, "char") + ")" }));
        right.appendChild(textBlock(c.answer, "answer-text"));
      } else if (!c.done) {
        right.appendChild(el("div", { cls: "muted", text: "No answer on file: the run stopped while this call was under way." }));
      }
      body.appendChild(right);
      var kv = el("table", { cls: "kv wide" });
      [["status", st.text], ["model", c.model], ["depth", String(c.depth)],
       ["started", c.start ? "+" + secs(c.start - T0) : "–"], ["latency", secs(c.latency)],
       ["tokens", int(c.pt) + " prompt + " + int(c.ct) + " completion"], ["cost", cost(c.cost)],
       ["batch", c.batch || "–"]].forEach(function (row) {
        kv.appendChild(el("tr", null, el("td", { cls: "muted", text: row[0] }), el("td", { text: row[1] })));
      });
      body.appendChild(kv);
      if (c.child && RUNS[c.child]) {
        var child = el("div", { cls: "child" }, el("div", { cls: "muted", text: "Child RLM run " + c.child }));
        renderRun(RUNS[c.child], child);
        body.appendChild(child);
      }
    });
    d.setAttribute("data-call", String(i));
    return d;
  }

  /* A paged list of sub-calls, with a filter for failed ones. */
  function callList(indices, body) {
    var list = el("div", { cls: "call-list" });
    var shown = 0, items = indices;
    var more = el("button", { cls: "more show-more", onclick: function () { page(PAGE); } });
    function page(n) {
      var end = Math.min(items.length, shown + n);
      for (; shown < end; shown++) list.appendChild(renderCall(items[shown]));
      more.textContent = "show " + int(Math.min(PAGE, items.length - shown)) + " more of " + int(items.length - shown);
      more.style.display = shown < items.length ? "" : "none";
    }
    var failed = indices.filter(function (i) { return CALLS[i].error || !CALLS[i].done; });
    if (failed.length && failed.length < indices.length) {
      var box = el("input", { type: "checkbox", cls: "only-failed" });
      box.addEventListener("change", function () {
        items = box.checked ? failed : indices;
        list.textContent = "";
        shown = 0;
        page(PAGE);
      });
      body.appendChild(el("label", { cls: "muted" }, box, " only failed or unfinished (" + failed.length + ")"));
    }
    body.appendChild(list);
    body.appendChild(more);
    page(PAGE);
    list._showUpTo = function (i) {
      var pos = items.indexOf(i);
      if (pos < 0 && items !== indices) { box.checked = false; items = indices; list.textContent = ""; shown = 0; pos = items.indexOf(i); }
      if (pos >= shown) page(pos - shown + 1);
    };
    return list;
  }

  function callsGroup(indices, label) {
    var nFailed = indices.filter(function (i) { return CALLS[i].error; }).length;
    var nOpen = indices.filter(function (i) { return !CALLS[i].done; }).length;
    var text = label + " (" + int(indices.length) + (nFailed ? ", " + nFailed + " failed" : "") +
      (nOpen ? ", " + nOpen + " unfinished" : "") + ")";
    var d = lazy("calls", el("span", { cls: nFailed ? "errtext" : "" }, text), function (body) {
      d._list = callList(indices, body);
    });
    return d;
  }

  // ------------------------------------------------------------------ turns and cells

  function cellBroken(cell) { return !!(cell.error || cell.timed_out || cell.state_lost); }

  function renderCell(run, turn, cell) {
    var box = el("div", { cls: "cell" + (cellBroken(cell) ? " err" : ""), id: "cell-" + run.id + "-" + turn.turn + "-" + cell.index });
    var head = el("div", { cls: "cell-head" }, el("b", { text: "Cell " + cell.index }));
    head.appendChild(el("span", { cls: "muted", text: cell.done ? secs(cell.duration) : "did not finish" }));
    if (cell.calls.length) head.appendChild(el("span", { cls: "muted", text: plural(cell.calls.length, "sub-call") }));
    if (cell.final !== null) head.appendChild(el("span", { cls: "badge ok", text: "FINAL" }));
    if (cell.error) head.appendChild(el("span", { cls: "badge err", text: "error" }));
    if (cell.timed_out) head.appendChild(el("span", { cls: "badge err", text: "timed out" }));
    if (cell.state_lost) head.appendChild(el("span", { cls: "badge warn", text: "REPL state lost" }));
    box.appendChild(head);
    box.appendChild(el("div", { cls: "code" }, el("pre", { cls: "py" }, highlight(cell.code))));
    var out = el("div", { cls: "out" });
    if (cell.output) out.appendChild(el("div", null, el("div", { cls: "label", text: "output" }), textBlock(cell.output, "output")));
    if (cell.stderr) out.appendChild(el("div", null, el("div", { cls: "label", text: "stderr" }), textBlock(cell.stderr, "stderr")));
    if (cell.error) out.appendChild(el("div", null, el("div", { cls: "label", text: "error" }), textBlock(cell.error, "errtext")));
    if (cell.final !== null) out.appendChild(el("div", null, el("div", { cls: "label", text: "final answer" }), textBlock(cell.final)));
    if (!cell.output && !cell.stderr && !cell.error && cell.final === null) {
      out.appendChild(el("div", { cls: "muted", text: cell.done ? "(no output)" : "(still running when the trace ended)" }));
    }
    cell.batches.forEach(function (b) {
      var state = b.failures === null ? "unfinished" : b.failures ? b.failures + " failed" : "all answered";
      out.appendChild(el("div", { cls: "muted", text: "llm_batch " + b.batch_id + ": " + int(b.size) + " prompts, " + state +
        (b.ended_at ? " in " + secs(b.ended_at - b.started_at) : "") }));
    });
    cell.tools.forEach(function (t) {
      out.appendChild(el("div", { cls: t.error ? "errtext" : "muted", text: "tool " + t.name + "(" + oneLine(JSON.stringify(t.arguments), 120) + ") → " +
        oneLine(t.error || t.result || "", 160) + " · " + secs(t.latency_s) }));
    });
    box.appendChild(out);
    if (cell.calls.length) {
      var group = callsGroup(cell.calls, "Sub-calls");
      box.appendChild(group);
      box._calls = group;
    }
    return box;
  }

  /* The model's reply with each ```repl block replaced by a link to its cell. */
  function renderProse(run, turn) {
    var pre = el("pre", { cls: "prose" });
    var re = /```([A-Za-z0-9_+-]*)[^\n]*\n([\s\S]*?)(?:```|$)/g;
    var text = turn.reply, last = 0, m, k = 0;
    while ((m = re.exec(text)) !== null) {
      pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      var isRepl = m[1] === "repl" || m[1] === "python" || m[1] === "";
      if (isRepl && k < turn.cells.length) {
        var cell = turn.cells[k++];
        var target = "cell-" + run.id + "-" + turn.turn + "-" + cell.index;
        pre.appendChild(el("span", { cls: "chip", text: "⟨code: cell " + cell.index + " below⟩", onclick: function (id) {
          return function () { var n = document.getElementById(id); if (n) { n.scrollIntoView({ block: "center" }); flash(n); } };
        }(target) }));
      } else {
        pre.appendChild(el("span", { cls: "mono" }, highlight(m[0])));
      }
      last = re.lastIndex;
    }
    pre.appendChild(document.createTextNode(text.slice(last)));
    if (!text) pre.appendChild(el("span", { cls: "muted", text: turn.answered ? "(empty reply)" : "(no reply on file: the run stopped while the model was answering)" }));
    return pre;
  }

  function turnBroken(turn) {
    return turn.cells.some(function (c) { return cellBroken(c) || c.calls.some(function (i) { return CALLS[i].error; }); });
  }

  function renderTurn(run, turn) {
    var nCalls = turn.cells.reduce(function (n, c) { return n + c.calls.length; }, 0);
    var meta = int(turn.cells.length) + " cell" + (turn.cells.length === 1 ? "" : "s") + " · " + plural(nCalls, "sub-call") + " · " +
      int(turn.usage.prompt_tokens + turn.usage.completion_tokens) + " tokens · " + cost(turn.usage.cost_usd) +
      (turn.end ? " · " + secs(turn.end - turn.start) : "");
    var broken = turnBroken(turn);
    var summary = el("span", null, "Turn " + turn.turn, el("span", { cls: "sum-meta", text: meta }),
      broken ? el("span", { cls: "badge err", text: "errors" }) : null,
      turn.cells.some(function (c) { return c.final !== null; }) ? el("span", { cls: "badge ok", text: "FINAL" }) : null);
    var d = lazy("turn" + (broken ? " err" : ""), summary, function (body) {
      body.appendChild(el("div", { cls: "muted", text: "Model reply · " + (turn.model || run.model) + " · " + int(turn.pt) + " prompt + " +
        int(turn.ct) + " completion tokens · " + cost(turn.cost) + " · " + secs(turn.latency) +
        (turn.finish_reason && turn.finish_reason !== "stop" ? " · finish: " + turn.finish_reason : "") }));
      body.appendChild(renderProse(run, turn));
      d._cells = turn.cells.map(function (cell) { var n = renderCell(run, turn, cell); body.appendChild(n); return n; });
      if (turn.observation !== null) {
        body.appendChild(lazy("observation", el("span", { cls: "muted", text: "Observation sent back to the model (" + int(turn.observation.length) + " chars)" }),
          function (b) { b.appendChild(textBlock(turn.observation)); }));
      }
      body.appendChild(el("div", { cls: "muted", text: "Turn usage (reply + sub-calls): " + usageText(turn.usage) }));
    });
    d.id = "turn-" + run.id + "-" + turn.turn;
    return d;
  }

  function renderRun(run, container) {
    run._turnNodes = run.turns.map(function (turn) { var d = renderTurn(run, turn); container.appendChild(d); return d; });
    if (run.loose.length) container.appendChild(callsGroup(run.loose, "Sub-calls outside code cells"));
    run.notices.forEach(function (n) { container.appendChild(el("div", { cls: "notice", text: "note: " + n })); });
    if (run.parent) {
      container.appendChild(el("div", { cls: "muted", text: (run.finished ? "answer: " + oneLine(run.answer || "", 200) : "did not finish") +
        (run.error ? " · error: " + run.error : "") }));
    }
  }

  // ------------------------------------------------------------------ finding a call

  function flash(node) { node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash"); }

  /* Open everything down to sub-call i (and the call itself), then scroll to it. */
  function reveal(i) {
    var w = WHERE[i];
    if (!w) return null;
    if (w.run.parent && CALLS.length) {
      var parentIndex = -1;
      for (var k = 0; k < CALLS.length; k++) if (CALLS[k].id === w.run.parent) { parentIndex = k; break; }
      if (parentIndex >= 0) {
        reveal(parentIndex);
      }
    }
    if (!w.run._turnNodes) return null;
    var group;
    if (w.turn) {
      var tn = w.run._turnNodes[w.run.turns.indexOf(w.turn)];
      openNow(tn);
      group = tn._cells[w.turn.cells.indexOf(w.cell)]._calls;
    } else {
      group = document.querySelector("details.calls");
    }
    openNow(group);
    group._list._showUpTo(i);
    var node = group._list.querySelector('details[data-call="' + i + '"]');
    if (node) { openNow(node); node.scrollIntoView({ block: "center" }); flash(node); }
    return node;
  }

  // ------------------------------------------------------------------ timeline

  function drawTimeline(section) {
    var rootRun = RUNS[DATA.root] || DATA.runs[0];
    var t0 = T0, t1 = Math.max(DATA.t1, T0 + 0.001), span = t1 - t0;
    var order = CALLS.map(function (c, i) { return i; }).filter(function (i) { return CALLS[i].start; });
    order.sort(function (a, b) { return CALLS[a].start - CALLS[b].start; });
    var laneEnd = [], lanes = [], laneOf = [];
    order.forEach(function (i) {
      var c = CALLS[i], end = c.start + (c.done ? c.latency : t1 - c.start);
      var l = 0;
      while (l < laneEnd.length && laneEnd[l] > c.start + 1e-9) l++;
      if (l === laneEnd.length) { laneEnd.push(0); lanes.push([]); }
      laneEnd[l] = end;
      lanes[l].push(i);
      laneOf[i] = l;
    });
    var canvas = el("canvas", { "data-bars": String(order.length), "data-lanes": String(lanes.length) });
    var tip = el("div", { cls: "tip" });
    section.appendChild(el("div", { cls: "legend" },
      el("span", null, el("i", { style: "background:#7b61c9" }), "root model"),
      el("span", null, el("i", { style: "background:#9aa3b2" }), "code cell"),
      el("span", null, el("i", { style: "background:#3b8fd9" }), "sub-call"),
      el("span", null, el("i", { style: "background:#d94848" }), "failed"),
      el("span", null, el("i", { style: "background:#c7ccd4" }), "unfinished"),
      el("span", { text: "max " + lanes.length + " sub-calls at once · click a bar to open it" })));
    section.appendChild(canvas);
    section.appendChild(tip);
    var top = 44, axis = 16;
    var laneH = lanes.length ? Math.max(2, Math.min(10, Math.floor(360 / lanes.length))) : 10;
    var height = top + lanes.length * laneH + axis + 6;
    var GUTTER = 42; // room for the row labels, left of time zero
    function x(t, w) { return ((t - t0) / span) * (w - GUTTER - 12) + GUTTER; }
    function draw() {
      var w = canvas.clientWidth || 1000, ratio = window.devicePixelRatio || 1;
      canvas.width = w * ratio; canvas.height = height * ratio; canvas.style.height = height + "px";
      var g = canvas.getContext("2d");
      g.scale(ratio, ratio);
      g.font = "11px system-ui, sans-serif";
      var muted = getComputedStyle(document.body).getPropertyValue("--muted") || "#888";
      g.fillStyle = muted; g.fillText("root", 6, 13); g.fillText("cells", 6, 31);
      if (lanes.length) g.fillText("calls", 6, top + 9);
      if (rootRun) {
        rootRun.turns.forEach(function (turn) {
          g.fillStyle = "#7b61c9";
          var a = x(turn.start, w), b = x(turn.start + (turn.latency || 0), w);
          g.fillRect(a, 4, Math.max(2, b - a), 10);
          turn.cells.forEach(function (cell) {
            g.fillStyle = cellBroken(cell) ? "#d94848" : "#9aa3b2";
            var c0 = x(cell.start, w), c1 = x(cell.end || t1, w);
            g.fillRect(c0, 22, Math.max(2, c1 - c0), 10);
          });
        });
      }
      lanes.forEach(function (lane, l) {
        lane.forEach(function (i) {
          var c = CALLS[i];
          g.fillStyle = !c.done ? "#c7ccd4" : c.error ? "#d94848" : c.cached ? "#46a86b" : "#3b8fd9";
          var a = x(c.start, w), b = x(c.done ? c.start + c.latency : t1, w);
          g.fillRect(a, top + l * laneH, Math.max(1.5, b - a), Math.max(1, laneH - 1));
        });
      });
      g.fillStyle = muted;
      var step = Math.pow(10, Math.floor(Math.log10(span)));
      if (span / step < 4) step /= 2;
      var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
      for (var k = 0; k * step <= span + 1e-9; k++) {
        var t = k * step, px = x(t0 + t, w);
        g.fillRect(px, height - axis - 4, 1, 4);
        var label = span < 1 ? (t * 1000).toFixed(Math.max(0, decimals - 3)) + " ms" : t.toFixed(decimals) + " s";
        g.fillText(label, px + 2, height - 6);
      }
    }
    function hit(ev) {
      var r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
      var l = Math.floor((py - top) / laneH);
      if (l < 0 || l >= lanes.length) return -1;
      var t = t0 + ((px - GUTTER) / (r.width - GUTTER - 12)) * span, slack = span * 4 / r.width;
      var best = -1;
      lanes[l].forEach(function (i) {
        var c = CALLS[i], end = c.done ? c.start + c.latency : t1;
        if (t >= c.start - slack && t <= end + slack) best = i;
      });
      return best;
    }
    canvas.addEventListener("mousemove", function (ev) {
      var i = hit(ev);
      if (i < 0) { tip.style.display = "none"; return; }
      var c = CALLS[i], r = canvas.getBoundingClientRect();
      tip.textContent = c.id + " · " + callStatus(c).text + " · +" + secs(c.start - t0) + " · " + secs(c.latency) + "\n" + oneLine(c.prompt, 200);
      tip.style.display = "block";
      tip.style.left = Math.min(ev.clientX - r.left + 12, r.width - 300) + "px";
      tip.style.top = (ev.clientY - r.top + 14) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    canvas.addEventListener("click", function (ev) { var i = hit(ev); if (i >= 0) reveal(i); });
    window.addEventListener("resize", draw);
    draw();
    return lanes.length;
  }

  // ------------------------------------------------------------------ the page

  function stat(value, label, cls) {
    return el("div", { cls: cls || "" }, el("b", { text: value }), el("span", { text: label }));
  }

  var UNSURE = {
    max_turns: "no confident answer: the turn limit was reached",
    stalled: "no confident answer: the model kept repeating the same code",
    budget: "no confident answer: the budget ran out",
    cancelled: "cancelled"
  };

  function render() {
    var app = document.getElementById("app");
    app.textContent = "";
    var root = RUNS[DATA.root] || DATA.runs[0];
    document.title = "RLM · " + oneLine(DATA.title, 80);
    if (!root) { app.appendChild(el("h1", { text: "This trajectory holds no run yet." })); return; }
    var header = el("header", { id: "summary" });
    var asked = (DATA.questions || []).length;
    header.appendChild(el("h1", { id: "question", title: root.question, text: asked > 1 ? DATA.title : oneLine(root.question, 400) }));
    var badges = el("div", { cls: "badges" });
    // how the run ended, as `rlm runs` says it: only a confident answer is "complete"
    var stop = root.stop_reason || (/^CancelledError/.test(root.error || "") ? "cancelled" : null);
    var unsure = UNSURE[stop];
    if (!DATA.complete) badges.appendChild(el("span", { cls: "badge warn", text: "incomplete: the run stopped before its end" }));
    else if (unsure) badges.appendChild(el("span", { cls: "badge warn", id: "stop", text: unsure }));
    else if (!root.error) badges.appendChild(el("span", { cls: "badge ok", text: "complete" }));
    if (DATA.truncated) badges.appendChild(el("span", { cls: "badge warn", text: "last line cut short" }));
    if (DATA.skipped) badges.appendChild(el("span", { cls: "badge warn", text: DATA.skipped + " unreadable lines skipped" }));
    if (root.error && !unsure) badges.appendChild(el("span", { cls: "badge err", text: "run failed" }));
    var failed = CALLS.filter(function (c) { return c.error; }).length;
    if (failed) badges.appendChild(el("span", { cls: "badge err", text: failed + " failed sub-calls" }));
    badges.appendChild(el("span", { cls: "muted", text: root.model + (root.sub_model && root.sub_model !== root.model ? " → sub-calls " + root.sub_model : "") }));
    header.appendChild(badges);
    var ans = el("div", { id: "answer", cls: "card answer" + (root.answer === null ? (root.error ? " failed" : " missing") : "") });
    ans.appendChild(el("div", { cls: "muted", text: unsure ? "Answer (" + unsure + ")" : "Answer" }));
    ans.appendChild(root.answer !== null ? textBlock(root.answer, "final-answer") : el("div", { cls: "muted", text: root.error ? "No answer: " + root.error : "No answer on file." }));
    if (asked <= 1) header.appendChild(ans);
    var usage = DATA.usage;
    var stats = el("div", { cls: "stats", id: "stats" });
    if (asked > 1) stats.appendChild(stat(int(asked), "questions"));
    stats.appendChild(stat(int(asked > 1 ? DATA.questions.reduce(function (n, id) { return n + RUNS[id].turns.length; }, 0) : root.turns.length), "turns"));
    stats.appendChild(stat(int(CALLS.length), "sub-calls" + (failed ? " (" + failed + " failed)" : "")));
    stats.appendChild(stat(int(usage.calls), "model calls"));
    stats.appendChild(stat(int(usage.prompt_tokens + usage.completion_tokens), "tokens (" + int(usage.prompt_tokens) + " in)"));
    stats.appendChild(stat(cost(usage.cost_usd), "cost"));
    stats.appendChild(stat(secs((root.end || DATA.t1) - root.start), "elapsed"));
    var roots = Math.max(asked, 1);
    if (DATA.runs.length > roots) stats.appendChild(stat(int(DATA.runs.length - roots), "child runs"));
    header.appendChild(stats);
    var ctx = root.context || {};
    header.appendChild(el("div", { cls: "muted", text: "context: " + (ctx.type || "?") + (ctx.chars !== undefined ? " · " + plural(ctx.chars, "char") : "") +
      (ctx.lines !== undefined ? " · " + plural(ctx.lines, "line") : "") + (ctx.items !== undefined ? " · " + plural(ctx.items, "item") : "") }));
    app.appendChild(header);

    app.appendChild(el("h2", { text: "Timeline" }));
    var tl = el("section", { id: "timeline" });
    app.appendChild(tl);
    drawTimeline(tl);

    app.appendChild(el("h2", { text: "Turns" }));
    var tree = el("section", { id: "tree" });
    app.appendChild(tree);
    var questions = (DATA.questions || []).map(function (id) { return RUNS[id]; }).filter(Boolean);
    if (questions.length > 1) {  // a session: each question is a root run, in order
      questions.forEach(function (q, k) {
        var box = el("div", { cls: "card question", id: "question-" + (k + 1) });
        box.appendChild(el("h3", { title: q.question, text: "Question " + (k + 1) + ": " + oneLine(q.question, 300) }));
        box.appendChild(q.answer !== null ? textBlock(q.answer, "final-answer") :
          el("div", { cls: "muted", text: q.error ? "No answer: " + q.error : "No answer on file." }));
        renderRun(q, box);
        tree.appendChild(box);
      });
    } else {
      renderRun(root, tree);
    }
    DATA.runs.forEach(function (r) {  // runs whose parent call is not on file
      if (questions.indexOf(r) < 0 && r !== root && !(r.parent && CALLS.some(function (c) { return c.id === r.parent; }))) {
        var box = el("div", { cls: "card child" }, el("div", { cls: "muted", text: "Run " + r.id + " (parent " + (r.parent || "none") + ")" }));
        renderRun(r, box);
        tree.appendChild(box);
      }
    });

    var settings = lazy("settings", el("span", { cls: "muted", text: "Run settings and file details" }), function (body) {
      var kv = el("table", { cls: "kv" });
      var rows = [["run id", root.id], ["model", root.model], ["sub-model", root.sub_model]];
      Object.keys(root.settings).forEach(function (k) { rows.push([k, JSON.stringify(root.settings[k])]); });
      Object.keys(usage.by_model || {}).forEach(function (m) { rows.push(["usage " + m, usageText(usage.by_model[m])]); });
      rows.push(["source", DATA.source || "–"], ["events", int(DATA.events)], ["trace schema", String(DATA.schema)], ["written by", "rlmagent " + (DATA.writer || "?")]);
      rows.forEach(function (r) { kv.appendChild(el("tr", null, el("td", { cls: "muted", text: r[0] }), el("td", { cls: "mono", text: r[1] }))); });
      body.appendChild(kv);
      if ((ctx.preview || []).length) body.appendChild(textBlock(ctx.preview.join("\n")));
    });
    app.appendChild(settings);
    app.setAttribute("data-ready", "1");
  }

  window.rlmViewer = { reveal: reveal, data: DATA };
  render();
})();

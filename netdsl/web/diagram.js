/* The interactive netdsl diagram: NetdslDiagram.mount(element, data, options).
 *
 * `data` is netdsl.web.diagram.diagram_data(network) as JSON. The component keeps which
 * blocks are expanded, builds the DOT text of that view alone (collapsed blocks are one
 * box; an expanded repeat with many iterations shows the first ones, the last ones and
 * one box for the rest) and lays it out with Graphviz (the global `Viz` of
 * @viz-js/viz). Everything is drawn inside `element`; nothing is fetched.
 *
 * Events: a click on a layer dispatches `netdsl-source` ({file, line, col}) on `element`.
 */
(function (global) {
  "use strict";

  // one family Graphviz has metrics for (a list falls back to Times's, narrower), so text
  // fits its box wherever Helvetica or a metric twin (Arial, Liberation Sans) draws it
  var FONT = "Helvetica";
  var WINDOW_HEAD = 8; // an expanded repeat with more iterations than WINDOW_MAX shows the
  var WINDOW_TAIL = 2; // first WINDOW_HEAD and last WINDOW_TAIL; a click on the box of
  var WINDOW_MAX = 16; // the rest shows WINDOW_STEP more
  var WINDOW_STEP = 16;
  var READABLE = 0.75; // a new view is drawn at least this large (pan to see the rest)
  var MAX_REVEALED = 50; // search: matches beyond this many are counted, not expanded to
  var vizPromise = null;

  function viz() {
    if (!vizPromise) {
      if (!global.Viz) return Promise.reject(new Error("Viz (Graphviz) is not loaded"));
      vizPromise = global.Viz.instance();
    }
    return vizPromise;
  }

  function q(text) {
    return '"' + String(text).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") + '"';
  }

  function h(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  function number(n) {
    return Number(n).toLocaleString("en-US");
  }

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- the model: what is expanded, and which box each node is drawn in ---------------

  function Model(data) {
    this.data = data;
    this.byId = {};
    for (var i = 0; i < data.scopes.length; i++) this.byId[data.scopes[i].id] = i;
  }

  Model.prototype.drawn = function (s) {
    return this.data.scopes[s].rows !== undefined; // a block, repeat or group
  };

  Model.prototype.ancestors = function (s) {
    var out = [];
    for (var p = this.data.scopes[s].parent; p > 0; p = this.data.scopes[p].parent) out.push(p);
    return out;
  };

  // ---- the component ------------------------------------------------------------------

  function Diagram(element, data, options) {
    this.element = element;
    this.options = options || {};
    this.expanded = {}; // scope id -> true
    this.shown = {}; // repeat id -> iterations shown from its start
    this.forced = {}; // repeat id -> {iteration: true} (search results)
    this.matches = {}; // box key -> true
    this.view = { x: 0, y: 0, k: 1 };
    this.seq = 0;
    this.build();
    this.setData(data);
    var depth = this.options.depth || 0;
    for (var s = 1; s < data.scopes.length; s++) {
      var scope = data.scopes[s];
      if (scope.rows !== undefined && scope.level < depth) this.expanded[scope.id] = true;
    }
    this.ready = this.render(true);
  }

  Diagram.prototype.setData = function (data) {
    this.data = data;
    this.model = new Model(data);
  };

  Diagram.prototype.build = function () {
    var root = this.element;
    root.classList.add("netdsl-diagram");
    root.innerHTML = "";
    var bar = el("div", "netdsl-toolbar");
    this.searchBox = el("input", "netdsl-search");
    this.searchBox.type = "search";
    this.searchBox.placeholder = "search layers and blocks";
    this.searchBox.setAttribute("aria-label", "search by name");
    this.status = el("span", "netdsl-status");
    var self = this;
    var timer = null;
    this.searchBox.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        self.search(self.searchBox.value);
      }, 200);
    });
    this.searchBox.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        clearTimeout(timer);
        self.search(self.searchBox.value);
      }
    });
    bar.appendChild(this.searchBox);
    var buttons = [
      ["expand all", function () { self.expandAll(); }],
      ["collapse all", function () { self.collapseAll(); }],
      ["fit", function () { self.fit(); }],
      ["Export SVG", function () { self.exportSVG(); }],
      ["Export PNG", function () { self.exportPNG(); }],
    ];
    buttons.forEach(function (b) {
      var button = el("button", "netdsl-button", b[0]);
      button.type = "button";
      button.addEventListener("click", b[1]);
      bar.appendChild(button);
    });
    bar.appendChild(this.status);
    this.viewport = el("div", "netdsl-viewport");
    this.canvas = el("div", "netdsl-canvas");
    this.viewport.appendChild(this.canvas);
    this.tip = el("div", "netdsl-tip");
    this.tip.hidden = true;
    this.source = el("div", "netdsl-source");
    this.source.hidden = true;
    root.appendChild(bar);
    root.appendChild(this.viewport);
    root.appendChild(this.source);
    root.appendChild(this.tip);
    this.panZoom();
  };

  // -- boxes ----------------------------------------------------------------------------

  Diagram.prototype.isExpanded = function (s) {
    return s === 0 || !this.model.drawn(s) || !!this.expanded[this.data.scopes[s].id];
  };

  /* The iterations of an expanded repeat drawn one by one: null for all of them. */
  Diagram.prototype.window = function (s) {
    var scope = this.data.scopes[s];
    var n = scope.children.length;
    if (scope.kind !== "repeat" || n <= WINDOW_MAX) return null;
    var head = Math.max(WINDOW_HEAD, this.shown[scope.id] || 0);
    var visible = {};
    for (var i = 0; i < n; i++) if (i < head || i >= n - WINDOW_TAIL) visible[i] = true;
    var forced = this.forced[scope.id] || {};
    for (var k in forced) visible[k] = true;
    return visible;
  };

  /* Box keys: "n<node>" a layer, "s<scope>" a collapsed block, "g<repeat>_<first>" hidden
   * iterations. scopeBox[s] is the box everything in scope s is drawn in, or null. */
  Diagram.prototype.assign = function () {
    var scopes = this.data.scopes;
    var scopeBox = new Array(scopes.length);
    var windows = {};
    var gaps = {}; // gap key -> {repeat, first, last, params}
    var gapOf = {}; // repeat -> its gap seen last
    scopeBox[0] = null;
    for (var s = 1; s < scopes.length; s++) {
      var scope = scopes[s];
      var outer = scopeBox[scope.parent];
      if (outer) {
        scopeBox[s] = outer;
        continue;
      }
      var parent = scopes[scope.parent];
      var win = windows[scope.parent];
      if (win === undefined && parent.kind === "repeat") win = windows[scope.parent] = this.window(scope.parent);
      if (win && !win[scope.at]) {
        // iterations come in order: one hidden after a hidden one continues its gap
        var previous = gapOf[scope.parent];
        var first = previous && previous.last === scope.at - 1 ? previous.first : scope.at;
        var key = "g" + scope.parent + "_" + first;
        var gap = gaps[key] || (gaps[key] = { repeat: scope.parent, first: first, last: first, params: 0 });
        gap.last = Math.max(gap.last, scope.at);
        gapOf[scope.parent] = gap;
        scopeBox[s] = key;
        continue;
      }
      scopeBox[s] = this.isExpanded(s) ? null : "s" + s;
    }
    var nodes = this.data.nodes;
    var box = new Array(nodes.length);
    var folded = {};
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var key2 = scopeBox[node.scope];
      if (key2) {
        box[i] = key2;
        if (key2.charAt(0) === "g") gaps[key2].params += node.params;
        continue;
      }
      if (node.host !== undefined && box[node.host].charAt(0) === "n") {
        box[i] = box[node.host];
        (folded[box[i]] || (folded[box[i]] = [])).push(i);
      } else {
        box[i] = "n" + i;
      }
    }
    this.layout = { scopeBox: scopeBox, box: box, folded: folded, gaps: gaps, windows: windows };
  };

  // -- DOT ------------------------------------------------------------------------------

  Diagram.prototype.dot = function () {
    this.assign();
    var data = this.data;
    var lines = [
      "digraph netdsl {",
      "  graph [rankdir=TB, newrank=true, ordering=out, remincross=false, nodesep=0.25, ranksep=0.32," +
        " fontname=" + q(FONT) + ', bgcolor="transparent", pad=0.2];',
      '  node [shape=box, style="rounded,filled", fontname=' + q(FONT) + ", fontsize=12," +
        ' penwidth=1.2, margin="0.14,0.06", height=0.3];',
      "  edge [fontname=" + q(FONT) + ', fontsize=10, color="#6b7785", fontcolor="#4a5562",' +
        " arrowsize=0.6, penwidth=1.0];",
    ];
    this.bypass = {};
    this.emitScope(0, lines, "  ", 0);
    this.emitEdges(lines);
    lines.push("}");
    return lines.join("\n") + "\n";
  };

  Diagram.prototype.emitScope = function (s, lines, pad, depth) {
    var data = this.data;
    var scope = data.scopes[s];
    var layout = this.layout;
    var emittedGaps = {};
    for (var c = 0; c < scope.children.length; c++) {
      var child = scope.children[c];
      if (child >= 0) {
        if (layout.box[child] === "n" + child) lines.push(pad + this.layerStmt(child));
        continue;
      }
      var sub = ~child;
      var key = layout.scopeBox[sub];
      if (key && key.charAt(0) === "g") {
        if (!emittedGaps[key]) {
          emittedGaps[key] = true;
          lines.push(pad + this.gapStmt(key));
        }
        continue;
      }
      if (key) {
        this.blockStmts(sub).forEach(function (line) { lines.push(pad + line); });
        continue;
      }
      var inner = data.scopes[sub];
      var framed = inner.rows !== undefined && scope.through !== sub;
      if (framed) {
        var fill = depth % 2 ? "#e9eef4" : "#f5f7fa";
        var label = "<<b>" + h(inner.rows[0]) + "</b>";
        if (inner.rows.length > 1) {
          label += '&#160;&#160;<font color="#4f6278">' + h(inner.rows.slice(1).join("  ")) + "</font>";
        }
        label += ">";
        lines.push(pad + "subgraph " + q("cluster_s" + sub) + " {");
        lines.push(pad + "  graph [id=" + q("c_s" + sub) + ", label=" + label + ', labeljust=l, style="rounded,filled",' +
          " fillcolor=" + q(fill) + ', color="#a9b4c0", penwidth=1.0, fontsize=13, margin=10];');
        this.emitScope(sub, lines, pad + "  ", depth + 1);
        lines.push(pad + "}");
      } else {
        this.emitScope(sub, lines, pad, depth);
      }
    }
  };

  Diagram.prototype.colours = function (cat) {
    return this.data.colours[cat] || this.data.colours.shape;
  };

  Diagram.prototype.layerStmt = function (i) {
    var node = this.data.nodes[i];
    var key = "n" + i;
    var c = this.colours(node.cat);
    if (node.op === "input") {
      return key + " [id=" + q("b_" + key) + ", label=<<b>" + h(node.id) + '</b><br/><font point-size="11">' +
        h(node.shape) + "</font>>, fillcolor=" + q(c[0]) + ", color=" + q(c[1]) + ', fontcolor="white"];';
    }
    var folded = this.layout.folded[key] || [];
    var rows = ["<b>" + h(node.call) + "</b>"];
    var calls = folded.map(function (j) { return this.data.nodes[j].call; }, this);
    for (var k = 0; k < calls.length; k += 3) rows.push(h((k ? "+ " : "") + calls.slice(k, k + 3).join(" + ")));
    var params = node.params;
    folded.forEach(function (j) { params += this.data.nodes[j].params; }, this);
    var small = [];
    if (node.name && node.name !== node.op) small.push(h(node.name));
    if (params) small.push(number(params) + " params");
    if (small.length) rows.push('<font point-size="10" color="#4a5562">' + small.join(" · ") + "</font>");
    var style = "rounded,filled" + (node.train ? ",dashed" : "");
    var cls = this.matches[key] ? " netdsl-match" : "";
    return key + " [id=" + q("b_" + key) + ", class=" + q("netdsl-layer" + cls) + ", label=<" + rows.join("<br/>") +
      ">, fillcolor=" + q(c[0]) + ", color=" + q(c[1]) + ", style=" + q(style) + "];";
  };

  Diagram.prototype.blockStmts = function (s) {
    var scope = this.data.scopes[s];
    var key = "s" + s;
    var c = this.colours("block");
    var rows = ["<b>" + h(scope.rows[0]) + "</b>"];
    scope.rows.slice(1).forEach(function (r) { rows.push(h(r)); });
    rows.push('<font point-size="10" color="#4a5562">' + h(scope.shape) + " · " + number(scope.params) + " params</font>");
    var style = scope.train ? ', style="rounded,filled,dashed"' : "";
    var cls = "netdsl-block" + (this.matches[key] ? " netdsl-match" : "");
    var stmts = [key + " [id=" + q("b_" + key) + ", class=" + q(cls) + ", label=<" + rows.join("<br/>") + ">, fillcolor=" +
      q(c[0]) + ", color=" + q(c[1]) + ", penwidth=1.6" + style + "];"];
    if (scope.shortcut) {
      // the skip connection of a collapsed block, as `netdsl render` draws it
      var m = this.colours("merge");
      var fork = key + "_in", join = key + "_out";
      this.bypass[key] = true;
      stmts.unshift(fork + ' [shape=point, width=0.07, color="#6b7785"];');
      if (scope.shortcut[1] === null) {
        stmts.push(join + ' [shape=point, width=0.07, color="#6b7785"];');
      } else {
        stmts.push(join + " [label=<<b>" + h(scope.shortcut[1]) + "</b>>, fillcolor=" + q(m[0]) + ", color=" + q(m[1]) +
          ', margin="0.1,0.03"];');
      }
      stmts.push(fork + " -> " + key + " [arrowhead=none, weight=8];");
      stmts.push(key + " -> " + join + " [weight=8];");
      stmts.push(fork + " -> " + join + " [label=" + q(" " + scope.shortcut[0]) +
        ', color="#b5535f", fontcolor="#b5535f", penwidth=1.4' + (scope.shortcut[1] === null ? ", style=dashed" : "") + "];");
    }
    return stmts;
  };

  Diagram.prototype.gapStmt = function (key) {
    var gap = this.layout.gaps[key];
    var repeat = this.data.scopes[gap.repeat];
    var count = gap.last - gap.first + 1;
    var c = this.colours("block");
    var label = "<<b>… " + number(count) + " more</b><br/>" + h(repeat.title) + "." + gap.first + " to " + h(repeat.title) +
      "." + gap.last + '<br/><font point-size="10" color="#4a5562">' + number(gap.params) + " params · click to show</font>>";
    return key + " [id=" + q("b_" + key) + ', class="netdsl-gap", label=' + label + ", fillcolor=" + q(c[0]) +
      ", color=" + q(c[1]) + ', style="rounded,filled,dashed"];';
  };

  Diagram.prototype.emitEdges = function (lines) {
    var data = this.data, box = this.layout.box, seen = {}, self = this;
    function enter(k) { return self.bypass[k] ? k + "_in" : k; }
    function leave(k) { return self.bypass[k] ? k + "_out" : k; }
    var pairs = [], sources = {};
    for (var e = 0; e < data.edges.length; e++) {
      var edge = data.edges[e];
      var u = box[edge[0]], v = box[edge[1]];
      if (u === v || seen[u + ">" + v]) continue;
      seen[u + ">" + v] = true;
      pairs.push([u, v]);
      (sources[v] || (sources[v] = [])).push(u);
      var target = data.nodes[edge[1]];
      var style = target.train ? ", style=dashed" : "";
      lines.push("  " + leave(u) + " -> " + enter(v) + " [label=" + q(" " + data.nodes[edge[0]].shape) + style + "];");
    }
    // branches left to right in source order, as `netdsl render` draws them: the first
    // boxes of the branches leaving one box share a rank, chained by invisible edges
    // (`ordering=out` alone does not hold across clusters)
    var heads = {}, forks = [];
    pairs.forEach(function (pair) {
      if (sources[pair[1]].length !== 1) return;
      if (!heads[pair[0]]) {
        heads[pair[0]] = [];
        forks.push(pair[0]);
      }
      heads[pair[0]].push(enter(pair[1]));
    });
    forks.forEach(function (fork) {
      if (heads[fork].length > 1) lines.push("  {rank=same; " + heads[fork].join(" -> ") + " [style=invis];}");
    });
    data.outputs.forEach(function (out, i) {
      var c = self.colours("io");
      var node = data.nodes[out[1]];
      var what = node.shape + (out[2] ? " (train only)" : "");
      lines.push("  out" + i + " [label=<<b>" + h(out[0]) + '</b><br/><font point-size="11">' + h(what) +
        "</font>>, fillcolor=" + q(c[0]) + ", color=" + q(c[1]) + ', fontcolor="white", style=' +
        q("rounded,filled" + (out[2] ? ",dashed" : "")) + "];");
      lines.push("  " + leave(box[out[1]]) + " -> out" + i + " [label=" + q(" " + node.shape) + (out[2] ? ", style=dashed" : "") + "];");
    });
  };

  // -- drawing --------------------------------------------------------------------------

  /* Lay out the current view; the box or frame of `anchor` (a box key) stays in place. */
  Diagram.prototype.render = function (fit, anchor) {
    var self = this;
    var seq = ++this.seq;
    var before = anchor ? this.screenPos(anchor) : null;
    var text = this.dot();
    this.lastDot = text;
    var started = performance.now();
    return viz().then(function (instance) {
      if (seq !== self.seq) return; // a newer view was asked for meanwhile
      var svg;
      try {
        svg = instance.renderSVGElement(text);
      } catch (err) {
        self.setStatus("Graphviz could not lay this view out: " + err.message);
        throw err;
      }
      self.layoutMs = performance.now() - started;
      Array.prototype.forEach.call(svg.querySelectorAll("title"), function (t) { t.remove(); });
      svg.removeAttribute("width");
      svg.removeAttribute("height");
      var box = svg.viewBox.baseVal;
      svg.setAttribute("width", box.width);
      svg.setAttribute("height", box.height);
      self.canvas.innerHTML = "";
      self.canvas.appendChild(svg);
      self.svg = svg;
      self.apply();
      self.wire(svg);
      if (fit) {
        self.fit(READABLE);
      } else if (before) {
        var after = self.screenPos(anchor);
        if (after) {
          self.view.x += before.x - after.x;
          self.view.y += before.y - after.y;
          self.apply();
        }
      }
      self.setStatus(self.describe());
      self.element.dispatchEvent(new CustomEvent("netdsl-rendered", { detail: { ms: self.layoutMs } }));
    });
  };

  Diagram.prototype.describe = function () {
    var boxes = this.svg ? this.svg.querySelectorAll('g.node[id^="b_"]').length : 0;
    return this.data.name + ": " + number(this.data.params) + " params · " + number(this.data.macs) + " MACs · " +
      number(boxes) + " boxes shown of " + number(this.data.nodes.length) + " nodes";
  };

  Diagram.prototype.setStatus = function (text) {
    this.statusText = text;
    this.status.textContent = (this.searchText ? this.searchText + " · " : "") + text;
  };

  /* Where a box (or the frame of the same block, expanded) is on screen. */
  Diagram.prototype.screenPos = function (key) {
    if (!this.svg) return null;
    var node = this.svg.getElementById("b_" + key) || this.svg.getElementById("c_" + key);
    if (!node) return null;
    var r = node.getBoundingClientRect();
    return { x: r.left, y: r.top };
  };

  Diagram.prototype.wire = function (svg) {
    var self = this;
    Array.prototype.forEach.call(svg.querySelectorAll("g.node, g.cluster"), function (g) {
      var id = g.id || "";
      var key = id.slice(2);
      if (!key) return;
      g.addEventListener("mouseenter", function (e) { self.showTip(key, e); });
      g.addEventListener("mousemove", function (e) { self.moveTip(e); });
      g.addEventListener("mouseleave", function () { self.tip.hidden = true; });
      g.addEventListener("click", function (e) {
        if (self.dragged) return;
        e.stopPropagation();
        self.activate(key);
      });
      g.style.cursor = "pointer";
    });
  };

  Diagram.prototype.activate = function (key) {
    var kind = key.charAt(0);
    var index = parseInt(key.slice(1), 10);
    if (kind === "s") {
      var scope = this.data.scopes[index];
      if (this.isExpanded(index)) this.collapse(scope.id);
      else this.expand(scope.id);
    } else if (kind === "g") {
      var gap = this.layout.gaps[key];
      var repeat = this.data.scopes[gap.repeat];
      var head = Math.max(WINDOW_HEAD, this.shown[repeat.id] || 0);
      this.shown[repeat.id] = head + WINDOW_STEP;
      this.render(false, key);
    } else if (kind === "n") {
      this.showSource(index);
    }
  };

  Diagram.prototype.showSource = function (i) {
    var node = this.data.nodes[i];
    if (!node.loc || !node.loc.length) return;
    var file = this.data.files[node.loc[0]];
    var line = node.loc[1], col = node.loc[2];
    var text = this.data.lines[node.loc[0] + ":" + line] || "";
    this.source.hidden = false;
    this.source.innerHTML = "";
    var head = el("div", "netdsl-source-where");
    head.appendChild(el("b", null, node.id));
    head.appendChild(document.createTextNode("  " + file + ":" + line + ":" + col));
    var close = el("button", "netdsl-close", "×");
    close.type = "button";
    close.title = "close";
    var self = this;
    close.addEventListener("click", function () { self.source.hidden = true; });
    head.appendChild(close);
    var pre = el("pre", "netdsl-source-line");
    pre.textContent = text + "\n" + " ".repeat(Math.max(0, col - 1)) + "^";
    this.source.appendChild(head);
    this.source.appendChild(pre);
    this.element.dispatchEvent(new CustomEvent("netdsl-source", {
      detail: { file: file, line: line, col: col, id: node.id }, bubbles: true,
    }));
  };

  Diagram.prototype.tipRows = function (key) {
    var data = this.data, kind = key.charAt(0), index = parseInt(key.slice(1), 10);
    if (kind === "s") {
      var scope = data.scopes[index];
      return [scope.id || scope.title, scope.rows.slice(1).join("  "), "output " + scope.shape,
        number(scope.params) + " params", number(scope.macs) + " MACs", bytes(scope.memory) + " output (float32, batch 1)",
        this.isExpanded(index) ? "click to collapse" : "click to expand"];
    }
    if (kind === "n") {
      var node = data.nodes[index];
      var all = [index].concat(this.layout.folded[key] || []);
      var last = data.nodes[all[all.length - 1]];
      var params = 0, macs = 0;
      all.forEach(function (j) { params += data.nodes[j].params; macs += data.nodes[j].macs; });
      var rows = [node.id, all.map(function (j) { return data.nodes[j].call; }).join(" + "), "output " + last.shape,
        number(params) + " params", number(macs) + " MACs", bytes(last.memory) + " output (float32, batch 1)"];
      if (node.loc && node.loc.length) rows.push(data.files[node.loc[0]] + ":" + node.loc[1] + ":" + node.loc[2]);
      return rows;
    }
    if (kind === "g") {
      var gap = this.layout.gaps[key];
      return [(gap.last - gap.first + 1) + " iterations not drawn", number(gap.params) + " params", "click to show more"];
    }
    return null;
  };

  Diagram.prototype.showTip = function (key, e) {
    var rows = this.tipRows(key);
    if (!rows) return;
    this.tip.innerHTML = "";
    var self = this;
    rows.forEach(function (r, i) {
      if (r) self.tip.appendChild(el(i ? "div" : "b", null, r));
    });
    this.tip.hidden = false;
    this.moveTip(e);
  };

  Diagram.prototype.moveTip = function (e) {
    var r = this.element.getBoundingClientRect();
    this.tip.style.left = Math.min(e.clientX - r.left + 14, r.width - this.tip.offsetWidth - 4) + "px";
    var below = e.clientY - r.top + 14;
    var above = e.clientY - r.top - 10 - this.tip.offsetHeight;
    this.tip.style.top = (below + this.tip.offsetHeight > r.height && above > 0 ? above : below) + "px";
  };

  // -- pan and zoom ---------------------------------------------------------------------

  Diagram.prototype.apply = function () {
    if (this.svg) {
      this.svg.style.transform = "translate(" + this.view.x + "px," + this.view.y + "px) scale(" + this.view.k + ")";
    }
  };

  /* Scale the drawing to the viewport (never above its own size), but not below
   * `readable`: a tall network then starts at its top, its text legible. */
  Diagram.prototype.fit = function (readable) {
    if (!this.svg) return;
    var w = parseFloat(this.svg.getAttribute("width")), hgt = parseFloat(this.svg.getAttribute("height"));
    var vw = this.viewport.clientWidth || 800, vh = this.viewport.clientHeight || 600;
    var k = Math.min(1, vw / w, Math.max(vh / hgt, readable || 0));
    this.view = { k: k, x: Math.max(0, (vw - w * k) / 2), y: 0 };
    this.apply();
  };

  Diagram.prototype.panZoom = function () {
    var self = this, vp = this.viewport, start = null;
    vp.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = vp.getBoundingClientRect();
      var px = e.clientX - r.left, py = e.clientY - r.top;
      var factor = Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015));
      var k = Math.min(8, Math.max(0.02, self.view.k * factor));
      self.view.x = px - (px - self.view.x) * (k / self.view.k);
      self.view.y = py - (py - self.view.y) * (k / self.view.k);
      self.view.k = k;
      self.apply();
    }, { passive: false });
    vp.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      start = { x: e.clientX, y: e.clientY, vx: self.view.x, vy: self.view.y };
      self.dragged = false;
    });
    vp.addEventListener("pointermove", function (e) {
      if (!start) return;
      var dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (!self.dragged && Math.abs(dx) + Math.abs(dy) < 5) return;
      if (!self.dragged) vp.setPointerCapture(e.pointerId);
      self.dragged = true;
      self.view.x = start.vx + dx;
      self.view.y = start.vy + dy;
      self.apply();
    });
    function end(e) {
      if (start && self.dragged && vp.hasPointerCapture(e.pointerId)) vp.releasePointerCapture(e.pointerId);
      start = null;
      setTimeout(function () { self.dragged = false; }, 0);
    }
    vp.addEventListener("pointerup", end);
    vp.addEventListener("pointercancel", end);
  };

  // -- the API --------------------------------------------------------------------------

  Diagram.prototype.scopeIndex = function (path) {
    var s = this.model.byId[path];
    if (s === undefined) throw new Error("no block '" + path + "' in " + this.data.name);
    return s;
  };

  Diagram.prototype.expand = function (path) {
    var s = this.scopeIndex(path);
    var self = this;
    this.model.ancestors(s).concat([s]).forEach(function (a) { self.markExpanded(a); });
    return this.render(false, "s" + s);
  };

  Diagram.prototype.markExpanded = function (s) {
    var scopes = this.data.scopes;
    while (s !== undefined && s !== null) {
      if (scopes[s].rows !== undefined) this.expanded[scopes[s].id] = true;
      s = scopes[s].through; // a stage that wraps its repeat opens both
    }
  };

  Diagram.prototype.collapse = function (path) {
    var s = this.scopeIndex(path);
    var scopes = this.data.scopes;
    // a repeat a stage wraps collapses as its stage: the frame drawn is the stage's
    var p = scopes[s].parent;
    while (p > 0 && scopes[p].through === s) {
      s = p;
      p = scopes[p].parent;
    }
    delete this.expanded[scopes[s].id];
    return this.render(false, "s" + s);
  };

  Diagram.prototype.expandAll = function () {
    var self = this;
    this.data.scopes.forEach(function (scope) {
      if (scope.rows !== undefined) self.expanded[scope.id] = true;
    });
    return this.render(true);
  };

  Diagram.prototype.collapseAll = function () {
    this.expanded = {};
    this.shown = {};
    return this.render(true);
  };

  /* Highlight the layers and blocks whose name contains `text`, expanding their blocks. */
  Diagram.prototype.search = function (text) {
    text = (text || "").trim().toLowerCase();
    this.matches = {};
    this.forced = {};
    this.searchText = "";
    if (!text) return this.render(false);
    var data = this.data, found = [], self = this;
    // the outermost matches: a block that matches stands for what matches inside it
    var within = new Array(data.scopes.length); // scope -> it or a scope around it matched
    within[0] = false;
    data.scopes.forEach(function (scope, s) {
      if (!s) return;
      var hit = scope.rows !== undefined && scope.id.toLowerCase().indexOf(text) >= 0;
      if (hit && !within[scope.parent]) found.push(["s", s, scope.parent]);
      within[s] = within[scope.parent] || hit;
    });
    data.nodes.forEach(function (node, i) {
      if (node.op !== "input" && !within[node.scope] && node.id.toLowerCase().indexOf(text) >= 0) {
        found.push(["n", i, node.scope]);
      }
    });
    found.slice(0, MAX_REVEALED).forEach(function (f) {
      var chain = [f[2]].concat(self.model.ancestors(f[2]));
      chain.forEach(function (a) {
        if (a > 0) self.markExpanded(a);
        var parent = data.scopes[a] && data.scopes[a].parent;
        if (parent > 0 && data.scopes[parent].kind === "repeat") {
          var id = data.scopes[parent].id;
          (self.forced[id] || (self.forced[id] = {}))[data.scopes[a].at] = true;
        }
      });
    });
    this.assign();
    found.forEach(function (f) {
      var key = f[0] === "n" ? self.layout.box[f[1]] : self.layout.scopeBox[f[1]] || "s" + f[1];
      self.matches[key] = true;
      if (f[0] === "s") self.matches["c_s" + f[1]] = true;
    });
    this.searchText = found.length + " match" + (found.length === 1 ? "" : "es") + " for '" + text + "'";
    var first = found.length ? (found[0][0] === "n" ? "b_" + this.layout.box[found[0][1]] : "b_s" + found[0][1]) : null;
    return this.render(false).then(function () {
      self.markClusters();
      if (first) self.reveal(first);
    });
  };

  Diagram.prototype.markClusters = function () {
    for (var key in this.matches) {
      var g = key.indexOf("c_") === 0 && this.svg.getElementById(key);
      if (g) g.classList.add("netdsl-match");
    }
  };

  /* Pan so that the element is in view. */
  Diagram.prototype.reveal = function (id) {
    var g = this.svg.getElementById(id) || this.svg.getElementById("c_" + id.slice(2));
    if (!g) return;
    var r = g.getBoundingClientRect(), v = this.viewport.getBoundingClientRect();
    this.view.x += v.left + v.width / 2 - (r.left + r.width / 2);
    this.view.y += v.top + v.height / 3 - (r.top + r.height / 2);
    this.apply();
  };

  Diagram.prototype.update = function (data) {
    this.setData(data);
    this.matches = {};
    return this.render(false);
  };

  /* The current view as standalone SVG text. */
  Diagram.prototype.svgText = function () {
    var copy = this.svg.cloneNode(true);
    copy.removeAttribute("style");
    copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    var bg = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    bg.setAttribute("width", "100%");
    bg.setAttribute("height", "100%");
    bg.setAttribute("fill", "white");
    copy.insertBefore(bg, copy.firstChild);
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(copy);
  };

  function download(name, blob) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
  }

  Diagram.prototype.exportSVG = function () {
    var text = this.svgText();
    download(this.data.name + ".svg", new Blob([text], { type: "image/svg+xml" }));
    return text;
  };

  Diagram.prototype.exportPNG = function () {
    var self = this;
    var w = parseFloat(this.svg.getAttribute("width")), hgt = parseFloat(this.svg.getAttribute("height"));
    var scale = Math.min(2, 16000 / Math.max(w, hgt));
    var image = new Image();
    var url = URL.createObjectURL(new Blob([this.svgText()], { type: "image/svg+xml" }));
    return new Promise(function (resolve, reject) {
      image.onload = function () {
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(w * scale);
        canvas.height = Math.round(hgt * scale);
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "white";
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        canvas.toBlob(function (blob) {
          download(self.data.name + ".png", blob);
          resolve(blob);
        }, "image/png");
      };
      image.onerror = function () { reject(new Error("the SVG could not be drawn to a PNG")); };
      image.src = url;
    });
  };

  global.NetdslDiagram = {
    /* Draw `data` into `element`; the returned object's `ready` resolves once drawn. */
    mount: function (element, data, options) {
      var d = new Diagram(element, data, options);
      return {
        ready: d.ready,
        update: function (next) { return d.update(next); },
        expand: function (path) { return d.expand(path); },
        collapse: function (path) { return d.collapse(path); },
        search: function (text) { d.searchBox.value = text; return d.search(text); },
        exportSVG: function () { return d.exportSVG(); },
        exportPNG: function () { return d.exportPNG(); },
        expandAll: function () { return d.expandAll(); },
        collapseAll: function () { return d.collapseAll(); },
        dot: function () { return d.lastDot; },
        layoutMs: function () { return d.layoutMs; },
      };
    },
  };
})(typeof window !== "undefined" ? window : this);

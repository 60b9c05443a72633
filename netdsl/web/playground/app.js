// The netdsl playground's page: a CodeMirror editor whose text a Web Worker (worker.js,
// netdsl under Pyodide) checks as you type, and tabs that show what the CLI would print
// for it. The build (`netdsl playground`) puts the zoo, the words to colour and the wheel
// list into the page as JSON (#netdsl-data).
"use strict";

(() => {
  const DATA = JSON.parse(document.getElementById("netdsl-data").textContent);
  const STORAGE_KEY = "netdsl-playground";
  const DEBOUNCE_MS = 120; // after the last keystroke: typing stays one check behind at most

  // ---- the worker -------------------------------------------------------------------------

  const worker = new Worker("worker.js");
  const waiting = new Map();
  let nextId = 1;
  worker.onmessage = (event) => {
    const { id, result, error } = event.data;
    const { resolve, reject } = waiting.get(id);
    waiting.delete(id);
    if (error !== undefined) reject(new Error(error));
    else resolve(result);
  };
  function call(op, fields = {}) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, op, ...fields });
    });
  }

  // ---- highlighting: netdsl's own keywords and op names -----------------------------------

  function netdslLanguage(words) {
    const keywords = new Set(words.keywords);
    const constants = new Set(words.constants);
    const builtins = new Set([
      ...words.layers,
      ...words.merges,
      ...words.functions,
      ...words.initializers,
    ]);
    const numbered = /^(?:conv|dwconv|sepconv|maxpool|avgpool)[1-9][0-9]*$/;
    return CM.StreamLanguage.define({
      name: "netdsl",
      startState: () => ({ defining: false }),
      token(stream, state) {
        if (stream.eatSpace()) return null;
        if (stream.match("#")) {
          stream.skipToEnd();
          return "comment";
        }
        if (stream.match(/^"[^"\n]*"/)) return "string";
        if (stream.match(/^@\s*[A-Za-z_]\w*/)) return "meta";
        if (stream.match(/^\d+(?:[x×]\d+)+(?![A-Za-z0-9_])/)) return "number";
        if (stream.match(/^(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|^\d+[eE][+-]?\d+/)) return "number";
        if (stream.match(/^\d+/)) return "number";
        const word = stream.match(/^[A-Za-z_][A-Za-z0-9_]*/);
        if (word) {
          const name = word[0];
          if (state.defining) {
            state.defining = false;
            return "def";
          }
          if (name === "block" || name === "network" || name === "def") {
            state.defining = true;
            return "keyword";
          }
          if (stream.match(/^\s*=(?!=)/, false)) return "attribute";
          if (keywords.has(name)) return "keyword";
          if (constants.has(name)) return "atom";
          if (builtins.has(name) || numbered.test(name)) return "builtin";
          return "variable";
        }
        if (stream.match(/^(?:==|!=|<=|>=|\/\/|[-+*/%<>=])/)) return "operator";
        stream.next();
        return "punctuation";
      },
      languageData: { commentTokens: { line: "#" } },
    });
  }

  const { tags } = CM;
  const highlightStyle = CM.HighlightStyle.define([
    { tag: tags.keyword, color: "#7c3aad", fontWeight: "600" },
    { tag: tags.comment, color: "#6a737d", fontStyle: "italic" },
    { tag: tags.string, color: "#22863a" },
    { tag: tags.number, color: "#005cc5" },
    { tag: tags.atom, color: "#b05a00" },
    { tag: tags.meta, color: "#b05a00" },
    { tag: tags.standard(tags.variableName), color: "#0a6b8a" },
    { tag: tags.definition(tags.variableName), color: "#6f42c1", fontWeight: "600" },
    { tag: tags.attributeName, color: "#a0522d" },
    { tag: tags.operator, color: "#d73a49" },
  ]);

  // ---- the text and its file name ---------------------------------------------------------

  const exampleNames = Object.keys(DATA.examples).sort();
  function initialText() {
    const hash = new URLSearchParams(location.hash.slice(1));
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(STORAGE_KEY));
    } catch (error) {
      saved = null;
    }
    const wanted = hash.get("example");
    if (wanted && DATA.examples[wanted] !== undefined) {
      if (saved && saved.name === `${wanted}.net`) return saved;
      return { name: `${wanted}.net`, text: DATA.examples[wanted] };
    }
    if (saved && typeof saved.text === "string" && /^[\w.-]+\.net$/.test(saved.name)) {
      return saved;
    }
    return { name: `${DATA.default}.net`, text: DATA.examples[DATA.default] };
  }

  let { name: fileName, text: initial } = initialText();
  const filenameElement = document.getElementById("filename");
  filenameElement.textContent = fileName;

  // ---- the editor -------------------------------------------------------------------------

  let version = 0; // one more for every change of the text
  let pendingSince = null; // when the first change not yet checked was made
  const latencies = []; // keystroke -> its diagnostics shown, in ms (read by the tests)

  const view = new CM.EditorView({
    parent: document.getElementById("editor"),
    state: CM.EditorState.create({
      doc: initial,
      extensions: [
        CM.lineNumbers(),
        CM.highlightActiveLineGutter(),
        CM.history(),
        CM.drawSelection(),
        CM.indentOnInput(),
        CM.bracketMatching(),
        CM.highlightActiveLine(),
        CM.keymap.of([...CM.defaultKeymap, ...CM.historyKeymap, CM.indentWithTab]),
        netdslLanguage(DATA.words),
        CM.syntaxHighlighting(highlightStyle),
        CM.lintGutter(),
        CM.EditorView.updateListener.of((update) => {
          if (update.docChanged) changed();
        }),
      ],
    }),
  });

  function text() {
    return view.state.doc.toString();
  }

  function position(line, column) {
    const doc = view.state.doc;
    const at = doc.line(Math.min(Math.max(line, 1), doc.lines));
    return at.from + Math.min(Math.max(column - 1, 0), at.length);
  }

  function save() {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify({ name: fileName, text: text() }));
    } catch (error) {
      // private windows may refuse storage: the text just is not kept
    }
  }

  // ---- examples -----------------------------------------------------------------------------

  const examples = document.getElementById("examples");
  for (const name of exampleNames) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    examples.appendChild(option);
  }
  examples.value = DATA.examples[fileName.replace(/\.net$/, "")] !== undefined
    ? fileName.replace(/\.net$/, "")
    : "";
  examples.addEventListener("change", () => {
    const name = examples.value;
    fileName = `${name}.net`;
    filenameElement.textContent = fileName;
    history.replaceState(null, "", `#example=${encodeURIComponent(name)}`);
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: DATA.examples[name] } });
  });

  // ---- checking as you type -----------------------------------------------------------------

  const status = document.getElementById("status");
  const problems = document.getElementById("problems");
  let ready = false;
  let timer = null;
  let running = false;
  let roundOf = -1; // the version the last round checked
  let activeTab = "summary";
  const shown = {}; // tab -> the version its content is of

  function changed() {
    version += 1;
    if (pendingSince === null) pendingSince = performance.now();
    for (const tab of Object.keys(shown)) delete shown[tab];
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      save();
      schedule();
    }, DEBOUNCE_MS);
  }

  // What to do next, when nothing runs: check a text not yet checked (once its debounce
  // is over), else fill the active tab if it shows an older text or nothing.
  function schedule() {
    if (!ready || running) return;
    if (roundOf !== version) {
      if (timer === null) round();
    } else if (shown[activeTab] !== version) {
      fillTab();
    }
  }

  function fillTab() {
    running = true;
    const tab = activeTab;
    const of = version;
    showTab(tab, of, text())
      .catch((error) => {
        panels[tab].querySelector(".output").textContent = error.message;
        shown[tab] = of; // not again until the text changes
      })
      .finally(() => {
        running = false;
        schedule();
      });
  }

  // One check of the newest text: the markers and the panel. schedule() then fills the
  // active tab, or checks again if the text changed meanwhile.
  async function round() {
    running = true;
    const checked = version;
    roundOf = checked;
    const source = text();
    status.textContent = "checking…";
    try {
      const result = await call("check", { name: fileName, text: source });
      if (checked === version) showProblems(result, source);
      status.textContent = "ready";
    } catch (error) {
      status.textContent = "error";
      problems.className = "errors";
      problems.textContent = `netdsl playground: ${error.message}`;
    } finally {
      running = false;
    }
    schedule(); // the active tab next, unless the text changed meanwhile
  }

  function showProblems(result, source) {
    const diagnostics = result.problems.map((problem) => {
      const from = position(problem.line, problem.column);
      let to = position(problem.end_line, problem.end_column);
      if (to <= from) to = Math.min(from + 1, view.state.doc.length);
      const message = problem.code ? `${problem.message} [${problem.code}]` : problem.message;
      return { from, to, severity: problem.severity, message };
    });
    view.dispatch(CM.setDiagnostics(view.state, diagnostics));
    const errors = result.problems.some((problem) => problem.severity === "error");
    problems.className = errors ? "errors" : diagnostics.length ? "warnings" : "ok";
    problems.textContent = result.report;
    document.body.dataset.checked = String(version);
    window.netdslPlayground.checkedText = source;
    if (pendingSince !== null) {
      latencies.push(performance.now() - pendingSince);
      pendingSince = null;
    }
  }

  // ---- tabs ---------------------------------------------------------------------------------

  const panels = {};
  for (const panel of document.querySelectorAll("[data-panel]")) {
    panels[panel.dataset.panel] = panel;
  }
  const downloads = {}; // target -> the generated code shown, as the CLI printed it
  let diagram = null;

  async function showTab(tab, of, source) {
    if (shown[tab] === of) return;
    const panel = panels[tab];
    const output = panel.querySelector(".output");
    if (tab === "diagram") {
      const result = await call("diagram", { name: fileName, text: source });
      if (of !== version) return;
      output.textContent = result.error || "";
      output.classList.toggle("failed", Boolean(result.error));
      const element = panel.querySelector(".diagram");
      element.hidden = !result.data; // an error: the message where the diagram was
      if (result.data) {
        if (diagram === null) diagram = NetdslDiagram.mount(element, result.data, {});
        else diagram.update(result.data);
      }
    } else {
      const result = await call(tab, { name: fileName, text: source });
      if (of !== version) return;
      const failed = result.status !== 0;
      output.classList.toggle("failed", failed);
      output.textContent = failed ? result.stderr : result.stdout;
      if (tab === "torch" || tab === "keras") {
        downloads[tab] = failed ? null : result.stdout;
        panel.querySelector(".download").disabled = failed;
      }
    }
    shown[tab] = of;
    panel.dataset.version = String(of);
  }

  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => {
      activeTab = button.dataset.tab;
      for (const other of document.querySelectorAll("[data-tab]")) {
        other.setAttribute("aria-selected", String(other === button));
      }
      for (const [tab, panel] of Object.entries(panels)) panel.hidden = tab !== activeTab;
      schedule();
    });
  }

  for (const button of document.querySelectorAll(".download")) {
    button.addEventListener("click", () => {
      const code = downloads[button.dataset.target];
      if (code == null) return;
      const stem = fileName.replace(/\.net$/, "");
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([code], { type: "text/x-python" }));
      link.download = `${stem}_${button.dataset.target}.py`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    });
  }

  // a click on a layer of the diagram shows its line in the editor
  document.addEventListener("netdsl-source", (event) => {
    const { line, col, file } = event.detail || {};
    if (!line || (file && file !== fileName)) return;
    const at = position(line, col || 1);
    view.dispatch({ selection: { anchor: at }, scrollIntoView: true });
    view.focus();
  });

  // ---- start ----------------------------------------------------------------------------------

  status.textContent = `loading Python (Pyodide ${DATA.pyodide})…`;
  const started = performance.now();
  call("init", { wheels: DATA.wheels })
    .then(() => {
      ready = true;
      document.body.dataset.ready = "1";
      window.netdslPlayground.startup = performance.now() - started;
      round();
    })
    .catch((error) => {
      status.textContent = "Python failed to start";
      problems.className = "errors";
      problems.textContent = `netdsl playground: ${error.message}`;
    });

  window.netdslPlayground = { view, latencies, downloads, fileName: () => fileName };
})();

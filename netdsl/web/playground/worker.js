// The playground's Python: Pyodide with netdsl's wheels, answering the page's requests in
// the order they come (netdsl/web/playground/bridge.py does the work). Everything it loads
// sits beside it in the site: no network beyond the site's own host.
"use strict";

importScripts("pyodide/pyodide.js");

let ready = null;
let bridge = null;

async function start(wheels) {
  const indexURL = new URL("pyodide/", self.location.href).href;
  const pyodide = await loadPyodide({ indexURL, packageBaseUrl: indexURL });
  const site = pyodide.runPython("import site; site.getsitepackages()[0]");
  for (const wheel of wheels) {
    const response = await fetch(new URL(`wheels/${wheel}`, self.location.href));
    if (!response.ok) throw new Error(`wheels/${wheel}: HTTP ${response.status}`);
    pyodide.unpackArchive(await response.arrayBuffer(), "wheel", { extractDir: site });
  }
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
  bridge = pyodide.pyimport("netdsl.web.playground.bridge");
}

function answer(op, name, text) {
  if (op === "check") return bridge.check(name, text);
  if (op === "diagram") return bridge.diagram(name, text);
  return bridge.run(name, text, op);
}

self.onmessage = async (event) => {
  const { id, op, name, text, wheels } = event.data;
  try {
    if (op === "init") {
      ready = start(wheels);
      await ready;
      self.postMessage({ id, result: null });
      return;
    }
    await ready;
    self.postMessage({ id, result: JSON.parse(answer(op, name, text)) });
  } catch (error) {
    self.postMessage({ id, error: String((error && error.message) || error) });
  }
};

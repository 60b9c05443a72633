// Tokenizes .net files with the extension's TextMate grammar, as VS Code does (vscode-textmate
// on the Oniguruma regex engine), and prints the tokens as JSON:
//   {"FILE": [[line, start, end, [scope, ...]], ...], ...}
// line counts from 0, start/end are UTF-16 offsets in the line (end exclusive).
// tests/test_editors.py compares them with the Pygments lexer's tokens over the zoo.
//
//   node test/tokenize.mjs FILE...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const oniguruma = require("vscode-oniguruma");
const { Registry, INITIAL } = require("vscode-textmate");

const EXTENSION = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(EXTENSION, "package.json"), "utf8"));
const [contributed] = manifest.contributes.grammars;

async function loadGrammar() {
  const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.length));
  const registry = new Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === contributed.scopeName
        ? JSON.parse(readFileSync(join(EXTENSION, contributed.path), "utf8"))
        : null,
  });
  return registry.loadGrammar(contributed.scopeName);
}

function tokenize(grammar, text) {
  const tokens = [];
  let stack = INITIAL;
  text.split(/\r?\n/).forEach((line, number) => {
    const result = grammar.tokenizeLine(line, stack);
    for (const token of result.tokens) {
      tokens.push([number, token.startIndex, Math.min(token.endIndex, line.length), token.scopes]);
    }
    stack = result.ruleStack;
  });
  return tokens;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node test/tokenize.mjs FILE...");
  process.exit(2);
}
const grammar = await loadGrammar();
const out = {};
for (const file of files) {
  out[file] = tokenize(grammar, readFileSync(file, "utf8"));
}
process.stdout.write(JSON.stringify(out));

// The parts of CodeMirror 6 the netdsl playground uses, as one global `CM`
// (bundled by esbuild: `npm ci && npm run build` writes ../vendor/codemirror.js).
export { EditorState } from "@codemirror/state";
export {
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  drawSelection,
} from "@codemirror/view";
export {
  StreamLanguage,
  HighlightStyle,
  syntaxHighlighting,
  bracketMatching,
  indentOnInput,
} from "@codemirror/language";
export { setDiagnostics, lintGutter } from "@codemirror/lint";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { tags } from "@lezer/highlight";

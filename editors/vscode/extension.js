// The netdsl extension's client: starts `netdsl lsp` (the language server that ships with
// the netdsl Python package) over stdio for every .net file. Plain JavaScript, so there is
// no build step: the .vsix holds this file and vscode-languageclient as they are.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

const CLIENT_ID = "netdsl";
const CLIENT_NAME = "netdsl";
let client;

/** `netdsl.server.command` + `netdsl.server.args`, as one program and its arguments. */
function serverCommand() {
  const config = vscode.workspace.getConfiguration("netdsl");
  const command = config.get("server.command", ["netdsl", "lsp"]);
  const args = config.get("server.args", []);
  if (!Array.isArray(command) || command.length === 0) {
    throw new Error('netdsl.server.command must be a non-empty list, e.g. ["netdsl", "lsp"]');
  }
  return { command: command[0], args: [...command.slice(1), ...args] };
}

async function start() {
  const { command, args } = serverCommand();
  const executable = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    CLIENT_ID,
    CLIENT_NAME,
    { run: executable, debug: executable },
    {
      documentSelector: [
        { scheme: "file", language: "netdsl" },
        { scheme: "untitled", language: "netdsl" },
      ],
      // `netdsl.trace.server` is read by the client itself (its id is `netdsl`)
      outputChannelName: "netdsl",
    },
  );
  try {
    await client.start();
  } catch (error) {
    const message =
      `netdsl: could not start the language server \`${[command, ...args].join(" ")}\` ` +
      `(${error.message || error}). Install it with \`pip install "netdsl[lsp]"\`, ` +
      "or point the setting netdsl.server.command at it.";
    const choice = await vscode.window.showErrorMessage(message, "Open Settings");
    if (choice === "Open Settings") {
      vscode.commands.executeCommand("workbench.action.openSettings", "netdsl.server");
    }
  }
}

async function stop() {
  if (client) {
    const running = client;
    client = undefined;
    await running.stop().catch(() => undefined);
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("netdsl.restartServer", async () => {
      await stop();
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("netdsl.server")) {
        await stop();
        await start();
      }
    }),
  );
  await start();
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };

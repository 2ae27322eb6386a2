#!/usr/bin/env node
/**
 * The `tsvene` command line: `npx tsvene <command> [options]`. Results go to stdout (text, or
 * JSON with --json), progress and notes to stderr. Exit codes: 0 done, 1 the work failed,
 * 2 the command was called wrongly (the message names the flag and the form expected).
 */
import { UsageError, commandUsage, examplesSection, parseCommandArgs } from "./args.js";
import type { Command } from "./context.js";
import { attributeCommand } from "./commands/attribute.js";
import { collectCommand } from "./commands/collect.js";
import { dasCommand } from "./commands/das.js";
import { generateCommand } from "./commands/generate.js";
import { headsCommand } from "./commands/heads.js";
import { lensCommand } from "./commands/lens.js";
import { parityCommand } from "./commands/parity.js";
import { patchCommand } from "./commands/patch.js";
import { traceCommand } from "./commands/trace.js";
import { serveCommand } from "./commands/serve.js";
import { sweepCommand } from "./commands/sweep.js";
import { workerCommand } from "./commands/worker.js";
import { tsveneVersion } from "./version.js";

const COMMANDS: readonly Command[] = [
  traceCommand,
  patchCommand,
  headsCommand,
  attributeCommand,
  lensCommand,
  collectCommand,
  generateCommand,
  dasCommand,
  parityCommand,
  serveCommand,
  sweepCommand,
  workerCommand,
];

function generalUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.syntax.name.length));
  return [
    "Usage: tsvene <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.syntax.name.padEnd(width)}  ${c.syntax.summary}`),
    "",
    "Every model command takes --model <Hub id or folder> (default: the embedded default model),",
    "--json (print JSON), --out <file> (write JSON) and --quiet (no progress bar).",
    'Run "tsvene <command> --help" for its options. TSVENE_DEBUG=1 prints stack traces of errors.',
    "",
    ...examplesSection(["tsvene trace --report trace.html", "tsvene help patch"]),
    "",
  ].join("\n");
}

/** The command of that name, or undefined after telling the user which names exist. */
function findCommand(name: string): Command | undefined {
  const command = COMMANDS.find((c) => c.syntax.name === name);
  if (command === undefined) {
    const known = COMMANDS.map((c) => c.syntax.name).join(", ");
    process.stderr.write(
      `tsvene: unknown command ${JSON.stringify(name)} (expected one of ${known})\nRun "tsvene --help" for usage.\n`,
    );
  }
  return command;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(generalUsage());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    if (rest[0] === undefined) {
      process.stdout.write(generalUsage());
      return 0;
    }
    const topic = findCommand(rest[0]);
    if (topic === undefined) return 2;
    process.stdout.write(commandUsage(topic.syntax));
    return 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${tsveneVersion()}\n`);
    return 0;
  }
  const command = findCommand(name);
  if (command === undefined) return 2;
  try {
    const args = parseCommandArgs(command.syntax, rest);
    if (args.help) {
      process.stdout.write(commandUsage(command.syntax));
      return 0;
    }
    return await command.run(args);
  } catch (error) {
    if (process.env.TSVENE_DEBUG) console.error(error);
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof UsageError) {
      process.stderr.write(`tsvene ${name}: ${message}\nRun "tsvene ${name} --help" for usage.\n`);
      return 2;
    }
    process.stderr.write(`tsvene ${name}: ${message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));

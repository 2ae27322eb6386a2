/**
 * Argument parsing for the command line: node:util's parseArgs splits the words, and this module
 * checks them against each command's option table, so that every mistake (an unknown command or
 * flag, a missing value, a value of the wrong form) is reported as a UsageError that names the
 * flag and the form expected. Usage texts are generated from the same tables.
 */
import { parseArgs } from "node:util";

/** A mistake in how the command was called: main prints it with a hint and exits with code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface OptionBase {
  description: string;
  /** Shown beside the flag in usage texts and in errors, e.g. "<text>" or "N". */
  form?: string;
  short?: string;
  required?: boolean;
}

export type OptionSpec =
  | (OptionBase & { kind: "boolean" })
  | (OptionBase & { kind: "string"; multiple?: boolean })
  | (OptionBase & { kind: "int"; min?: number })
  | (OptionBase & { kind: "number"; positive?: boolean })
  | (OptionBase & { kind: "choice"; choices: readonly string[] });

export type OptionTable = Readonly<Record<string, OptionSpec>>;

type ValueOf<S extends OptionSpec> = S extends { kind: "boolean" }
  ? boolean
  : S extends { kind: "int" | "number" }
    ? number
    : S extends { kind: "choice"; choices: readonly (infer C)[] }
      ? C
      : S extends { multiple: true }
        ? string[]
        : string;

/** Parsed options by flag name (without the dashes); absent flags are undefined. */
export type OptionValues<T extends OptionTable> = { -readonly [K in keyof T]?: ValueOf<T[K]> };

export interface ParsedArgs<T extends OptionTable> {
  values: OptionValues<T>;
  positionals: string[];
  help: boolean;
}

export interface CommandSyntax {
  name: string;
  /** One line: what the command does. */
  summary: string;
  /** The call pattern after `tsvene <name>`, e.g. `--prompt <text> [options]`. */
  synopsis: string;
  /** Positional arguments by name, in order (e.g. ["dir"]); none by default. */
  positionals?: readonly string[];
  options: OptionTable;
  /** Paragraphs after the option list: defaults, file forms. */
  notes?: string;
  /** Whole command lines that run as written on the embedded default model (test/cli-examples runs each). */
  examples: readonly string[];
}

/** The form of a flag's value as usage texts and errors show it. */
export function flagForm(name: string, spec: OptionSpec): string {
  if (spec.kind === "boolean") return `--${name}`;
  const form =
    spec.form ??
    (spec.kind === "choice" ? spec.choices.join("|") : spec.kind === "int" || spec.kind === "number" ? "N" : "<value>");
  return `--${name} ${form}`;
}

/** Parses a command's arguments (everything after the command name) against its syntax. */
export function parseCommandArgs<T extends OptionTable>(
  syntax: CommandSyntax & { options: T },
  argv: readonly string[],
): ParsedArgs<T> {
  const { options, name: command } = syntax;
  const fail = (message: string): never => {
    throw new UsageError(message);
  };
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, spec] of Object.entries(options)) {
    parseOptions[name] = {
      type: spec.kind === "boolean" ? "boolean" : "string",
      multiple: true,
      ...(spec.short ? { short: spec.short } : {}),
    };
  }
  // Lenient parsing keeps the tokens of unknown flags and missing values, so the checks below can name them.
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const raw = new Map<string, string[]>();
  const positionals: string[] = [];
  let help = false;
  for (const token of tokens) {
    if (token.kind === "positional") {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== "option") continue;
    if (token.name === "help") {
      help = true;
      continue;
    }
    const spec = options[token.name];
    if (spec === undefined) {
      fail(
        `unknown option ${token.rawName} for "tsvene ${command}" (options: ${Object.keys(options)
          .map((n) => `--${n}`)
          .join(", ")})`,
      );
    }
    if (spec.kind === "boolean") {
      if (token.inlineValue)
        fail(`${token.rawName} is a switch and takes no value (write ${flagForm(token.name, spec)})`);
      raw.set(token.name, ["true"]);
      continue;
    }
    const value = token.value;
    // A following flag is not a value: "--prompt --json" means the prompt was left out.
    if (value === undefined || (!token.inlineValue && value.startsWith("--"))) {
      fail(`${token.rawName} needs a value (expected ${flagForm(token.name, spec)})`);
    }
    const multiple = spec.kind === "string" && spec.multiple === true;
    if (raw.has(token.name) && !multiple)
      fail(`--${token.name} was given more than once (expected ${flagForm(token.name, spec)} once)`);
    raw.set(token.name, [...(raw.get(token.name) ?? []), value!]);
  }
  if (help) return { values: {}, positionals, help };

  const expected = syntax.positionals ?? [];
  if (positionals.length > expected.length) {
    const extra = positionals
      .slice(expected.length)
      .map((p) => JSON.stringify(p))
      .join(" ");
    fail(
      expected.length === 0
        ? `"tsvene ${command}" takes no positional arguments, got ${extra} ` +
            '(values belong after their flag, e.g. --prompt "text"; quote text with spaces)'
        : `"tsvene ${command}" takes ${expected.map((p) => `<${p}>`).join(" ")}, got extra ${extra}`,
    );
  }
  if (positionals.length < expected.length)
    fail(`"tsvene ${command}" needs <${expected[positionals.length]}> (usage: tsvene ${command} ${syntax.synopsis})`);

  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(options)) {
    const given = raw.get(name);
    if (given === undefined) {
      if (spec.required) fail(`--${name} is required (expected ${flagForm(name, spec)})`);
      continue;
    }
    values[name] = convert(name, spec, given, fail);
  }
  return { values: values as OptionValues<T>, positionals, help };
}

function convert(name: string, spec: OptionSpec, given: string[], fail: (message: string) => never): unknown {
  const text = given[0];
  const wrong = (what: string) =>
    fail(`--${name} must be ${what} (expected ${flagForm(name, spec)}), got ${JSON.stringify(text)}`);
  switch (spec.kind) {
    case "boolean":
      return true;
    case "string":
      return spec.multiple ? given : text;
    case "choice":
      return spec.choices.includes(text) ? text : wrong(`one of ${spec.choices.join(", ")}`);
    case "int": {
      const min = spec.min ?? 0;
      const n = /^[+-]?\d+$/.test(text.trim()) ? Number(text) : NaN;
      return Number.isSafeInteger(n) && n >= min
        ? n
        : wrong(min === 0 ? "a non-negative integer" : `an integer ≥ ${min}`);
    }
    case "number": {
      const n = text.trim() === "" ? NaN : Number(text);
      if (!Number.isFinite(n)) return wrong("a number");
      return spec.positive && !(n > 0) ? wrong("a positive number") : n;
    }
  }
}

/** A comma-separated list of layers, or "all", checked against the model's layer count. */
export function parseLayerList(text: string, numLayers: number, flag: string): number[] {
  if (text.trim() === "all") return Array.from({ length: numLayers }, (_, i) => i);
  const parts = text.split(",").map((p) => p.trim());
  const layers = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));
  if (layers.some((l) => !Number.isInteger(l)))
    throw new UsageError(
      `${flag} must be layer numbers separated by commas, or "all" (e.g. ${flag} 0,1,2), got ${JSON.stringify(text)}`,
    );
  const outside = layers.find((l) => l >= numLayers);
  if (outside !== undefined)
    throw new UsageError(
      `${flag}: layer ${outside} is out of range; the model has ${numLayers} layers (0..${numLayers - 1})`,
    );
  return [...new Set(layers)];
}

/** A layer number checked against the model's layer count. */
export function checkLayer(layer: number, numLayers: number, flag: string): number {
  if (layer >= numLayers)
    throw new UsageError(
      `${flag} ${layer} is out of range; the model has ${numLayers} layers (expected ${flag} 0..${numLayers - 1})`,
    );
  return layer;
}

/** The usage text of one command, generated from its syntax. */
export function commandUsage(syntax: CommandSyntax): string {
  const rows = [
    ...Object.entries(syntax.options).map(([name, spec]) => {
      const flag = spec.short ? `-${spec.short}, ${flagForm(name, spec)}` : flagForm(name, spec);
      return [flag, spec.description + (spec.required ? " (required)" : "")];
    }),
    ["-h, --help", "Show this text."],
  ];
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const lines = [
    `Usage: tsvene ${syntax.name} ${syntax.synopsis}`,
    "",
    syntax.summary,
    "",
    "Options:",
    ...rows.map(([flag, description]) => `  ${flag.padEnd(width)}  ${description}`),
  ];
  if (syntax.notes) lines.push("", syntax.notes);
  lines.push("", ...examplesSection(syntax.examples));
  return `${lines.join("\n")}\n`;
}

/** The "Examples:" block of a usage text: one command line per line, indented. */
export function examplesSection(examples: readonly string[]): string[] {
  return ["Examples:", ...examples.map((example) => `  ${example}`)];
}

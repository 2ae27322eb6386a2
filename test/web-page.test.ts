/**
 * The browser page (web/, built by scripts/build-web.ts and served by `tsvene serve`) driven in
 * headless Chromium: a causal trace run through the form on the embedded model must give the
 * grid `tsvene trace --json` gives for the same prompt, subject, seed and samples; a model folder
 * picked in the folder input (sharded weights, its own tokenizer) must load and trace as the CLI
 * does on that folder; and the page must load nothing from outside its own origin.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import * as tv from "../src/index.js";
import { buildWeb } from "../scripts/build-web.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist", "src", "cli", "main.js");
const TINY_GPT2 = "/work/shared/fixtures/pyvene-0.1.8/gpt2_tiny";
const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium) to run the browser test`;

interface TraceJson {
  kind: string;
  target: number;
  clean: number;
  corrupted: number;
  corruptedPositions: number[];
  grid: { layers: number[]; positions: number[]; values: number[][] };
}

interface Run {
  prompt: string;
  subject: string;
  seed: number;
  samples: number;
}

function cliTrace(run: Run, model?: string): TraceJson {
  const args = ["trace", "--prompt", run.prompt, "--subject", run.subject, "--seed", String(run.seed)];
  args.push("--samples", String(run.samples), "--json", "--quiet", ...(model ? ["--model", model] : []));
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as TraceJson;
}

function assertSameTrace(page: TraceJson, cli: TraceJson): void {
  assert.equal(page.kind, "trace");
  assert.equal(page.target, cli.target);
  assert.deepEqual(page.corruptedPositions, cli.corruptedPositions);
  assert.deepEqual(page.grid.layers, cli.grid.layers);
  assert.deepEqual(page.grid.positions, cli.grid.positions);
  assert.ok(Math.abs(page.clean - cli.clean) <= 1e-5 && Math.abs(page.corrupted - cli.corrupted) <= 1e-5);
  page.grid.values.forEach((row, r) =>
    row.forEach((value, c) => {
      const expected = cli.grid.values[r][c];
      assert.ok(Number.isFinite(value), `cell ${r},${c} is ${value}`);
      assert.ok(Math.abs(value - expected) <= 1e-5, `cell ${r},${c}: page ${value}, CLI ${expected}`);
    }),
  );
}

/**
 * A small HF folder unlike the embedded model: pyvene's tiny GPT-2 (vocabulary 100) with its
 * weights saved in shards plus the index, and a word-level tokenizer of the words w0 … w99.
 */
async function writeFixtureFolder(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  const { tensors } = await tv.readSafetensors(join(TINY_GPT2, "model.safetensors"));
  const config = JSON.parse(await readFile(join(TINY_GPT2, "config.json"), "utf8")) as Record<string, unknown>;
  await tv.saveCheckpoint(folder, tensors, { config, maxShardBytes: 60_000 });
  const vocab = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [i === 0 ? "<unk>" : `w${i}`, i]));
  const tokenizer = {
    version: "1.0",
    added_tokens: [
      { id: 0, content: "<unk>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  };
  await writeFile(join(folder, "tokenizer.json"), JSON.stringify(tokenizer));
  await writeFile(join(folder, "tokenizer_config.json"), JSON.stringify({ unk_token: "<unk>" }));
}

describe("the browser page in Chromium", { skip }, () => {
  let dir: string;
  let server: ChildProcess;
  let origin: string;
  let site: string;
  let context: BrowserContext;
  let page: Page;
  const requests: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsvene-web-"));
    site = (await buildWeb(join(dir, "dist"))).site;
    server = spawn(process.execPath, [MAIN, "serve", "--port", "0", "--dir", site], { stdio: "pipe" });
    origin = await new Promise<string>((found, failed) => {
      let text = "";
      server.stdout!.on("data", (chunk: Buffer) => {
        text += chunk;
        const url = /http:\/\/[^\s]+\//.exec(text)?.[0];
        if (url) found(url);
      });
      server.once("exit", (code) => failed(new Error(`tsvene serve exited ${code} before printing its URL`)));
    });
    context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
    });
    page = await context.newPage();
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(origin);
    await page.waitForSelector('body[data-model="default"]', { timeout: 60_000 });
  });

  after(async () => {
    await context?.close();
    server?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function runTrace(run: Run): Promise<TraceJson> {
    await page.click('.tabs button[data-kind="trace"]');
    await page.fill("#prompt", run.prompt);
    await page.fill("#subject", run.subject);
    await page.fill("#seed", String(run.seed));
    await page.fill("#samples", String(run.samples));
    await page.selectOption("#component", "block_output");
    const done = await page.evaluate(() => document.body.dataset.done ?? "");
    await page.click("#run");
    await page.waitForFunction((before) => (document.body.dataset.done ?? "") !== before, done, { timeout: 120_000 });
    assert.equal(await page.textContent("#error"), "");
    return JSON.parse(await downloaded("#download-json")) as TraceJson;
  }

  async function downloaded(button: string): Promise<string> {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
    return readFile((await download.path())!, "utf8");
  }

  it("fills the embedded model's example prompt and subject, and is cross-origin isolated", async () => {
    const facts = JSON.parse(await readFile(join(ROOT, "models", "default", "facts.json"), "utf8")) as {
      demo: { prompt: string; subject: string };
    };
    assert.equal(await page.inputValue("#prompt"), facts.demo.prompt);
    assert.equal(await page.inputValue("#subject"), facts.demo.subject);
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  });

  it("traces the embedded model through the form and matches tsvene trace --json within 1e-5", async () => {
    const run = { prompt: "Ka Bo lives in the city of", subject: "Ka Bo", seed: 3, samples: 2 };
    assertSameTrace(await runTrace(run), cliTrace(run));
    assert.equal(await page.locator("#panels svg.heatmap rect.cell").count(), 6 * 7);
    const report = await downloaded("#download-report");
    assert.match(report, /^<!DOCTYPE html>[\s\S]*<svg[\s\S]*Ka/i);
  });

  it("shows a clicked cell's value, and in the logit lens its top tokens", async () => {
    await page.click('.tabs button[data-kind="lens"]');
    const done = await page.evaluate(() => document.body.dataset.done ?? "");
    await page.click("#run");
    await page.waitForFunction((before) => (document.body.dataset.done ?? "") !== before, done);
    const lens = JSON.parse(await downloaded("#download-json")) as { values: number[][]; targetLabel: string };
    await page.locator("#panels rect.cell").last().click();
    const text = (await page.textContent("#cell")) ?? "";
    // The last cell is the final layer at the last position: the lens's target is its top token.
    assert.match(text, new RegExp(`^layer \\d+, position \\d+ .*: p\\(${lens.targetLabel}\\) = `));
    assert.equal(text.split("\n")[1].split("  ")[0], JSON.stringify(lens.targetLabel));
  });

  it("loads a picked HF folder (sharded weights, its own tokenizer) and traces as the CLI does on it", async () => {
    const folder = join(dir, "tiny-gpt2");
    await writeFixtureFolder(folder);
    await page.setInputFiles("#folder", folder);
    await page.waitForFunction(
      () => document.getElementById("error")!.textContent !== "" || document.body.dataset.model !== "default",
    );
    assert.equal(await page.textContent("#error"), "");
    assert.equal(await page.evaluate(() => document.body.dataset.model), "folder tiny-gpt2");
    assert.match((await page.textContent("#model-about")) ?? "", /gpt2, 4 layers/);
    const run = { prompt: "w5 w17 w42 w8 w63", subject: "w17 w42", seed: 1, samples: 3 };
    assertSameTrace(await runTrace(run), cliTrace(run, folder));
  });

  it("loads nothing from outside its own origin, and the WebAssembly kernels when the site has them", () => {
    assert.ok(requests.length > 0);
    if (existsSync(join(site, "tsvene.wasm"))) assert.ok(requests.includes(`${origin}tsvene.wasm`));
    assert.deepEqual(
      requests.filter((url) => !url.startsWith(origin) && !url.startsWith("blob:")),
      [],
    );
  });
});

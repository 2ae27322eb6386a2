/**
 * The browser page (web/, built by scripts/build-web.ts and served by `tsvene serve`) driven in
 * headless Chromium: a causal trace run through the form on the embedded model must give the
 * grid `tsvene trace --json` gives for the same prompt, subject, seed and samples, and head
 * patching the grid `tsvene heads --json` gives; a clicked cell of a trace or patch map must list
 * the top tokens of that cell's run as IntervenableModel computes it in Node; an unknown word must
 * be refused with the CLI's message; a model folder picked in the folder input (sharded weights,
 * its own tokenizer) must load and trace as the CLI does on that folder; and the page must load
 * nothing from outside its own origin. Cross-origin isolated, it computes on a kernel thread per
 * core (up to the threaded build's room); served without the isolation headers, on one, and its
 * trace still matches the CLI's.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import * as tv from "../src/index.js";
import { buildWeb } from "../scripts/build-web.js";
import { WASM_THREADS_MAX } from "../src/tensor/kernels/wasm-team.js";
import { cellProbabilities } from "./support/cell-runs.js";
import { CHROMIUM, CHROMIUM_ARGS } from "./support/chromium.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "dist", "src", "cli", "main.js");
const TINY_GPT2 = "/work/shared/fixtures/pyvene-0.1.8/gpt2_tiny";
const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium) to run the browser test`;

interface TraceJson {
  kind: string;
  noiseStd: number;
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

/** The CLI's output for `args` on the embedded model: its JSON, or its exit code and first line of stderr. */
function cli(args: string[]): { status: number | null; stdout: string; error: string } {
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, error: result.stderr.split("\n")[0] };
}

function cliTrace(run: Run, model?: string): TraceJson {
  const args = ["trace", "--prompt", run.prompt, "--subject", run.subject, "--seed", String(run.seed)];
  args.push("--samples", String(run.samples), "--json", "--quiet", ...(model ? ["--model", model] : []));
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8" });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as TraceJson;
}

/** The top `k` tokens of a distribution, largest first (ties by the lower id), decoded. */
function topTokens(probabilities: Float32Array, decode: (id: number) => string, k = 5) {
  const ids = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  return ids.slice(0, k).map((id) => ({ token: decode(id), probability: probabilities[id] }));
}

/** The top tokens the page lists under the title and the description of a clicked cell. */
function listedTokens(text: string): { token: string; probability: number }[] {
  return text
    .split("\n")
    .slice(2)
    .map((line) => {
      const cut = line.lastIndexOf("  ");
      return { token: JSON.parse(line.slice(0, cut)) as string, probability: Number(line.slice(cut + 2)) };
    });
}

function assertSameTokens(page: { token: string; probability: number }[], node: typeof page): void {
  assert.deepEqual(
    page.map((t) => t.token),
    node.map((t) => t.token),
  );
  page.forEach((t, i) => assert.ok(Math.abs(t.probability - node[i].probability) <= 1e-5, `${t.token}: ${i}`));
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

  it("computes on the WebAssembly kernels with a GEMM helper per further core, being isolated", async () => {
    const threaded = existsSync(join(site, "tsvene-threads.wasm"));
    const expected = threaded ? Math.min(availableParallelism(), WASM_THREADS_MAX) : 1;
    assert.equal(await page.evaluate(() => document.body.dataset.kernelThreads), String(expected));
    const threads = expected === 1 ? "one thread" : `${expected} threads`;
    assert.equal(await page.textContent("#engine"), `Computed here by the WebAssembly kernels on ${threads}.`);
  });

  it("traces the embedded model through the form and matches tsvene trace --json within 1e-5", async () => {
    const run = { prompt: "Ka Bo lives in the city of", subject: "Ka Bo", seed: 3, samples: 2 };
    assertSameTrace(await runTrace(run), cliTrace(run));
    assert.equal(await page.locator("#panels svg.heatmap rect.cell").count(), 6 * 7);
    const report = await downloaded("#download-report");
    assert.match(report, /^<!DOCTYPE html>[\s\S]*<svg[\s\S]*Ka/i);
  });

  async function clickCell(row: number, col: number): Promise<string> {
    const before = await page.evaluate(() => document.body.dataset.cell ?? "");
    await page.click(`#panels rect.cell[data-row="${row}"][data-col="${col}"]`);
    await page.waitForFunction((b) => (document.body.dataset.cell ?? "") !== b, before, { timeout: 60_000 });
    assert.equal(await page.textContent("#error"), "");
    return (await page.textContent("#cell")) ?? "";
  }

  it("lists a clicked trace cell's top tokens as IntervenableModel computes that run in Node", async () => {
    const run = { prompt: "Ka Bo lives in the city of", subject: "Ka Bo", seed: 4, samples: 3 };
    const trace = await runTrace(run);
    const text = await clickCell(2, 1);
    assert.match(text, /^layer 2, position 1 .*\n.*block_output restored .* mean of its 3 noise draws/);
    const { model, tokenizer } = await tv.loadDefaultModel();
    const prompt = tokenizer!.encode(run.prompt);
    const width = model.settings.hiddenSize;
    const positions = trace.corruptedPositions;
    const draws = tv.randn([3, positions.length, width], { std: trace.noiseStd, generator: new tv.Generator(4) });
    const question = { patched: prompt, restored: prompt, component: "block_output", layers: [2], position: 1 };
    const perDraw = [0, 1, 2].map((s) => {
      const noise = tv.squeeze(tv.slice(draws, 0, s, s + 1), 0);
      return cellProbabilities(model, { ...question, corruption: { positions, noise } });
    });
    const mean = perDraw[0].map((_, i) => (perDraw[0][i] + perDraw[1][i] + perDraw[2][i]) / 3);
    const node = topTokens(mean, (id) => tokenizer!.decode([id]));
    assertSameTokens(listedTokens(text), node);
    const cell = trace.grid.values[2][1];
    assert.ok(Math.abs(mean[trace.target] - cell) <= 1e-5, "the target's mean probability is the cell's value");
  });

  it("lists a clicked patch cell's top tokens as IntervenableModel computes that run in Node", async () => {
    await page.click('.tabs button[data-kind="patch"]');
    await page.selectOption("#component", "mlp_output");
    const done = await page.evaluate(() => document.body.dataset.done ?? "");
    await page.click("#run");
    await page.waitForFunction((before) => (document.body.dataset.done ?? "") !== before, done, { timeout: 120_000 });
    const text = await clickCell(4, 1);
    assert.match(text, /^layer 4, position 1 .*\nthe base run with mlp_output patched from the source run at layer 4/);
    const { model, tokenizer } = await tv.loadDefaultModel();
    const [base, source] = [await page.inputValue("#base"), await page.inputValue("#source")].map((t) =>
      tokenizer!.encode(t),
    );
    const question = { patched: base, restored: source, component: "mlp_output", layers: [4], position: 1 };
    const node = topTokens(cellProbabilities(model, question), (id) => tokenizer!.decode([id]));
    assertSameTokens(listedTokens(text), node);
  });

  it("runs head patching as tsvene heads --json does, drawn as a layer × head map", async () => {
    await page.click('.tabs button[data-kind="heads"]');
    assert.equal(await page.inputValue("#head-component"), "head_attention_value_output");
    const done = await page.evaluate(() => document.body.dataset.done ?? "");
    await page.click("#run");
    await page.waitForFunction((before) => (document.body.dataset.done ?? "") !== before, done, { timeout: 120_000 });
    assert.equal(await page.textContent("#error"), "");
    type Heads = { grids: { values: number[][] }[]; base: number; source: number } & Record<string, unknown>;
    const fromPage = JSON.parse(await downloaded("#download-json")) as Heads;
    const command = cli(["heads", "--json", "--quiet"]);
    assert.equal(command.status, 0, command.error);
    const fromCli = JSON.parse(command.stdout) as Heads;
    const strip = ({ grids, base, source, ...rest }: Heads) => ({
      ...rest,
      grids: grids.map(({ values, ...g }) => g),
    });
    assert.deepEqual(strip(fromPage), strip(fromCli));
    assert.ok(Math.abs(fromPage.base - fromCli.base) <= 1e-5 && Math.abs(fromPage.source - fromCli.source) <= 1e-5);
    fromPage.grids[0].values.forEach((row, l) =>
      row.forEach((v, h) => assert.ok(Math.abs(v - fromCli.grids[0].values[l][h]) <= 1e-5, `layer ${l} head ${h}`)),
    );
    const { model } = await tv.loadDefaultModel();
    const cells = model.numLayers * fromCli.grids[0].values[0].length;
    assert.equal(await page.locator("#panels svg rect.cell").count(), cells);
    const title = await page.locator('#panels rect.cell[data-row="0"][data-col="1"] title').textContent();
    assert.match(title ?? "", /^layer 0, head 1: p\(Quito\) = 0\.\d+/);
    assert.match(await downloaded("#download-report"), /^<!DOCTYPE html>[\s\S]*Head patching[\s\S]*<svg/i);
  });

  it("refuses a prompt with words the model does not know, with the CLI's message", async () => {
    const prompt = "Ada Lovelace lives in the city of";
    const command = cli(["trace", "--prompt", prompt, "--subject", "Ada", "--quiet"]);
    assert.equal(command.status, 2);
    const factsFile = join(ROOT, "models", "default", "facts.json");
    const expected = command.error
      .replace("tsvene trace: --prompt", "prompt")
      .replace(factsFile, `${origin}models/default/facts.json`);
    assert.match(expected, /"Ada" \(read as "<unk>"\), "Lovelace" \(read as "<unk>"\) are not in the model's vocab/);
    await page.click('.tabs button[data-kind="trace"]');
    await page.fill("#prompt", prompt);
    await page.fill("#subject", "Ada");
    await page.click("#run");
    await page.waitForFunction(() => document.getElementById("error")!.textContent !== "");
    assert.equal(await page.textContent("#error"), expected);
  });

  it("shows a clicked cell's value, and in the logit lens its top tokens", async () => {
    await page.click('.tabs button[data-kind="lens"]');
    await page.fill("#prompt", "Ka Bo lives in the city of");
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
    // The threaded build where the page computes on more than one thread, the plain one otherwise.
    const threaded =
      requests.includes(`${origin}tsvene-threads.wasm`) && requests.includes(`${origin}kernel-thread.js`);
    if (existsSync(join(site, "tsvene.wasm"))) assert.ok(threaded || requests.includes(`${origin}tsvene.wasm`));
    assert.deepEqual(
      requests.filter((url) => !url.startsWith(origin) && !url.startsWith("blob:")),
      [],
    );
  });
});

/** A server of `folder` without COOP/COEP, as a plain static host serves the page: no shared memory. */
function unisolatedServer(folder: string): Server {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
  return createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const file = join(folder, path.endsWith("/") ? `${path}index.html` : path);
    readFile(file).then(
      (body) => {
        response.writeHead(200, { "Content-Type": types[extname(file)] ?? "application/octet-stream" });
        response.end(body);
      },
      () => {
        response.writeHead(404);
        response.end();
      },
    );
  });
}

describe("the browser page served without cross-origin isolation", { skip }, () => {
  it("computes on one thread, and traces as tsvene trace --json does within 1e-5", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsvene-web-unisolated-"));
    const server = unisolatedServer((await buildWeb(join(dir, "dist"))).site);
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
    });
    try {
      await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await page.waitForSelector('body[data-model="default"]', { timeout: 60_000 });
      assert.equal(await page.evaluate(() => self.crossOriginIsolated), false);
      assert.equal(await page.evaluate(() => document.body.dataset.kernelThreads), "1");
      assert.equal(await page.textContent("#engine"), "Computed here by the WebAssembly kernels on one thread.");
      const run = { prompt: "Ka Bo lives in the city of", subject: "Ka Bo", seed: 3, samples: 2 };
      await page.fill("#prompt", run.prompt);
      await page.fill("#subject", run.subject);
      await page.fill("#seed", String(run.seed));
      await page.fill("#samples", String(run.samples));
      await page.selectOption("#component", "block_output");
      await page.click("#run");
      await page.waitForFunction(() => document.body.dataset.done !== undefined, null, { timeout: 120_000 });
      assert.equal(await page.textContent("#error"), "");
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-json")]);
      assertSameTrace(JSON.parse(await readFile((await download.path())!, "utf8")) as TraceJson, cliTrace(run));
    } finally {
      await context.close();
      server.close();
      server.closeAllConnections();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A trace report opened in headless Chromium: the heat maps render at a real size with their
 * cells, labels and colours, and the page loads nothing from outside itself.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import * as tv from "../src/index.js";
import type { TraceComponent, TraceResult } from "../src/sweeps/results.js";
import { CHROMIUM, CHROMIUM_ARGS } from "./support/chromium.js";

/** The CLI's JSON of a trace: the TraceResult with its grid as labelled rows. */
interface CliTrace {
  tokens: string[];
  noiseStd: number;
  grid: { layers: number[]; values: number[][] };
}
const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium) to run the browser test`;

const TOKENS = ["The", " <b>Eiffel</b>", " &", " Tower", " is", " in"];
const LAYERS = [0, 1, 2, 3, 4];
const PEAK = { row: 2, col: 3 };

function trace(component: TraceComponent): TraceResult {
  const values = LAYERS.flatMap((layer) =>
    TOKENS.map((_, position) => (layer === PEAK.row && position === PEAK.col ? 0.9 : 0.01 * (layer + position))),
  );
  return {
    kind: "trace",
    component,
    window: 1,
    tokens: TOKENS,
    corruptedPositions: [1, 2, 3],
    target: 6342,
    targetLabel: " Paris",
    metric: "probability",
    noiseStd: 0.5,
    seed: 0,
    samples: 1,
    clean: 0.91,
    corrupted: 0.02,
    corruptedSpread: 0,
    grid: {
      values: Float32Array.from(values),
      rows: LAYERS.length,
      cols: TOKENS.length,
      layers: LAYERS,
      positions: TOKENS.map((_, i) => i),
    },
  };
}

describe("trace report in Chromium", { skip }, () => {
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  const requests: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsvene-report-"));
    const reportPath = join(dir, "trace.html");
    await writeFile(
      reportPath,
      tv.traceReport(["block_output", "mlp_output", "attention_output"].map((c) => trace(c as TraceComponent))),
    );
    context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 900 },
    });
    page = await context.newPage();
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(pathToFileURL(reportPath).href);
  });

  after(async () => {
    await context?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loads nothing but the report itself", () => {
    assert.deepEqual(
      requests.filter((url) => !url.endsWith("/trace.html")),
      [],
    );
  });

  it("shows the title, prompt, metric and the three panels", async () => {
    assert.equal(await page.title(), "Causal tracing");
    assert.equal(await page.locator("h1").textContent(), "Causal tracing");
    assert.deepEqual(await page.locator("h2").allTextContents(), [
      "Impact of restoring state after corrupted input",
      "Impact of restoring MLP after corrupted input",
      "Impact of restoring attention after corrupted input",
    ]);
    assert.equal(await page.locator(".summary .prompt").textContent(), "The <b>Eiffel</b>* &* Tower* is in");
    assert.match(
      (await page.locator(".summary").textContent()) ?? "",
      /probability of " Paris" \(token 6342\) at the last position/,
    );
    assert.equal(await page.locator("#block_output .clean").textContent(), "p( Paris) = 0.91");
  });

  it("renders each heat map visibly with one cell per layer and position", async () => {
    const maps = page.locator("svg.heatmap");
    assert.equal(await maps.count(), 3);
    for (let i = 0; i < 3; i++) {
      const map = maps.nth(i);
      assert.ok(await map.isVisible());
      const box = await map.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `heat map ${i} has size ${JSON.stringify(box)}`);
      assert.equal(await map.locator("rect.cell").count(), LAYERS.length * TOKENS.length);
      const cell = await map.locator("rect.cell").first().boundingBox();
      assert.ok(cell && cell.width > 0 && cell.height > 0);
    }
  });

  it("labels columns with the tokens as text and rows with the layers", async () => {
    const map = page.locator("#block_output svg.heatmap");
    // The browser's text, after parsing: escaped tokens come back as the literal strings, "*" on corrupted ones.
    assert.deepEqual(await map.locator(".column-labels text").allTextContents(), [
      "The",
      " <b>Eiffel</b>*",
      " &*",
      " Tower*",
      " is",
      " in",
    ]);
    assert.deepEqual(await map.locator(".row-labels text").allTextContents(), LAYERS.map(String));
    assert.equal(await map.locator(".axis-title").textContent(), "layer");
    assert.equal(await map.locator(".value-label").textContent(), "p( Paris)");
    // The maximum and the corrupted value the scale is white at (the minimum, 0, is too close to it to label).
    assert.deepEqual(await map.locator(".tick").allTextContents(), ["0.9", "0.02"]);
    assert.equal(await map.getAttribute("role"), "img");
    assert.match(
      (await map.getAttribute("aria-label")) ?? "",
      /^Heat map of p\( Paris\) over 5 layers \(0–4\) and 6 positions/,
    );
  });

  it("paints the largest cells in each panel's hue and those at the corrupted value white", async () => {
    const fills = await page.locator("svg.heatmap rect.cell").evaluateAll((rects) =>
      rects.map((rect) => ({
        fill: getComputedStyle(rect).fill,
        title: rect.querySelector("title")?.textContent ?? "",
      })),
    );
    const peak = fills.filter((f) => f.title.endsWith("= 0.9")).map((f) => f.fill);
    const atCorrupted = new Set(fills.filter((f) => f.title.endsWith("= 0.02")).map((f) => f.fill));
    // ROME's hues at the maximum: purple, green, red; white at the corrupted run's value.
    assert.deepEqual(peak, ["rgb(63, 0, 125)", "rgb(0, 68, 27)", "rgb(103, 0, 13)"]);
    assert.deepEqual([...atCorrupted], ["rgb(255, 255, 255)"]);
  });

  it("takes a screenshot that is a non-empty PNG", async () => {
    const path = join(dir, "report.png");
    await page.screenshot({ path, fullPage: true });
    const png = await readFile(path);
    assert.ok(png.length > 1000, `screenshot is ${png.length} bytes`);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR: width and height of the page, big-endian at bytes 16 and 20.
    assert.ok(png.readUInt32BE(16) >= 1200 && png.readUInt32BE(20) > 900);
  });
});

describe("the main job's report (tsvene trace on the embedded model) in Chromium", { skip }, () => {
  it("renders the heat map with the prompt's tokens and the model's layers", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tsvene-mainjob-"));
    const reportPath = join(dir, "trace.html");
    const cli = new URL("../src/cli/main.js", import.meta.url);
    const { spawnSync } = await import("node:child_process");
    const run = spawnSync(process.execPath, [cli.pathname, "trace", "--report", reportPath, "--quiet", "--json"], {
      encoding: "utf8",
    });
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as CliTrace;
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    try {
      const page = await context.newPage();
      await page.goto(pathToFileURL(reportPath).href);
      const svg = page.locator("svg").first();
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `heat map box ${JSON.stringify(box)}`);
      assert.equal(
        await svg.locator("rect.cell").count(),
        result.grid.values.length * result.grid.values[0].length,
        "one cell per layer and position",
      );
      const subtitle = await svg.locator(".heatmap-subtitle").textContent();
      assert.equal(
        subtitle,
        `model default · Gaussian, σ = ${Number(result.noiseStd.toPrecision(4))}, seed 0, 10 draws`,
      );
      const text = await svg.textContent();
      for (const token of result.tokens) assert.ok(text!.includes(token.trim()), `token "${token}" is labelled`);
      for (const layer of result.grid.layers) assert.ok(text!.includes(String(layer)), `layer ${layer} is labelled`);
    } finally {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("reports at 1200 px in Chromium", { skip }, () => {
  let dir: string;
  let context: BrowserContext;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsvene-reports-"));
    context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 900 },
    });
  });

  after(async () => {
    await context?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function open(name: string, html: string): Promise<Page> {
    const path = join(dir, name);
    await writeFile(path, html);
    const page = await context.newPage();
    await page.goto(pathToFileURL(path).href);
    return page;
  }

  it("fits a 30-token prompt without horizontal scrolling: the prompt wraps, the heat map scales", async () => {
    const tokens = Array.from({ length: 30 }, (_, i) => ` token${i}${i % 7 === 0 ? "-with-a-long-tail" : ""}`);
    const values = LAYERS.flatMap((layer) => tokens.map((_, p) => 0.02 + 0.001 * layer * p));
    const long: TraceResult = {
      ...trace("block_output"),
      tokens,
      corruptedPositions: [1, 2],
      samples: 10,
      grid: {
        values: Float32Array.from(values),
        spread: new Float32Array(values.length).fill(0.01),
        rows: LAYERS.length,
        cols: tokens.length,
        layers: LAYERS,
        positions: tokens.map((_, i) => i),
      },
    };
    const page = await open("long.html", tv.traceReport(long));
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
    assert.ok(scrollWidth <= clientWidth, `page is ${scrollWidth} px wide in a ${clientWidth} px window`);
    const chipTops = await page
      .locator(".summary .prompt .token")
      .evaluateAll((chips) => chips.map((chip) => chip.getBoundingClientRect().top));
    assert.equal(chipTops.length, 30);
    assert.ok(new Set(chipTops).size > 1, "the prompt wraps onto more than one line");
    const map = page.locator("svg.heatmap");
    assert.equal(await map.locator("rect.cell").count(), LAYERS.length * 30);
    const box = await map.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= clientWidth, `heat map box ${JSON.stringify(box)}`);
    assert.equal(await map.locator(".column-labels text").count(), 30);
    assert.equal(
      await map.locator("rect.cell").first().locator("title").textContent(),
      'layer 0, position 0 " token0-with-a-long-tail": p( Paris) = 0.02 ± 0.01',
    );
    await page.close();
  });

  it("renders a layers × heads grid report with one cell per entry and its labels", async () => {
    const heads = 4;
    const page = await open(
      "heads.html",
      tv.gridReport({
        title: "Heads",
        panels: [
          {
            heading: "Per-head effect",
            valueLabel: "Δ p",
            grid: {
              rowTitle: "layer",
              colTitle: "head",
              rowLabels: LAYERS.map(String),
              colLabels: Array.from({ length: heads }, (_, h) => String(h)),
              values: LAYERS.flatMap((l) => Array.from({ length: heads }, (_, h) => 0.1 * l - 0.05 * h)),
            },
          },
        ],
      }),
    );
    const map = page.locator("svg.heatmap");
    assert.ok(await map.isVisible());
    assert.equal(await map.locator("rect.cell").count(), LAYERS.length * heads);
    assert.deepEqual(await map.locator(".row-labels text").allTextContents(), LAYERS.map(String));
    assert.deepEqual(await map.locator(".column-labels text").allTextContents(), ["0", "1", "2", "3"]);
    assert.equal(await map.locator(".axis-title").textContent(), "layer");
    assert.equal(await page.locator("table.top-cells tbody tr").count(), 10);
    await page.close();
  });
});

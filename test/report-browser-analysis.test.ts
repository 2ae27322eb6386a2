/**
 * The reports of the analysis commands (`tsvene heads`, `attribute`, `lens` on the embedded model)
 * opened in headless Chromium at 1200 px: every heat map renders with one cell per entry of the
 * grid the command's JSON gives, labelled with its row and column labels, the page loads nothing
 * from outside itself, and nothing scrolls sideways.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type BrowserContext } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./support/chromium.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium) to run the browser test`;

/** A grid as the CLI's JSON writes it. */
interface Grid {
  rowLabels: string[];
  colLabels: string[];
  values: (number | null)[][];
}

/** Each command, how its report is made, and the grids (in panel order) with the columns marked "*". */
interface Case {
  name: string;
  args: string[];
  title: string;
  grids(json: Record<string, unknown>): { grid: Grid; marked: number[] }[];
}

const CASES: Case[] = [
  {
    name: "heads",
    args: ["heads"],
    title: "Head patching",
    grids: (json) => (json.grids as Grid[]).map((grid) => ({ grid, marked: [] })),
  },
  {
    name: "heads-each",
    args: ["heads", "--base", "Fact : Ka Bo speaks", "--source", "Fact : Ro Bo speaks", "--positions", "each"],
    title: "Head patching",
    grids: (json) => (json.grids as Grid[]).map((grid) => ({ grid, marked: [] })),
  },
  {
    name: "attribute",
    args: ["attribute"],
    title: "Attribution patching",
    grids: (json) => [{ grid: json.grid as Grid, marked: json.differingPositions as number[] }],
  },
  {
    name: "attribute-heads",
    args: ["attribute", "--component", "head_attention_value_output", "--unit", "h.pos"],
    title: "Attribution patching",
    grids: (json) => [{ grid: json.grid as Grid, marked: json.differingPositions as number[] }],
  },
  {
    name: "lens",
    args: ["lens", "--dla"],
    title: "Logit lens",
    grids(json) {
      const probability = json.targetProbability as Grid;
      const top = json.top as { probabilities: number[][][] };
      const dla = json.directLogitAttribution as { layers: Grid; heads: Grid };
      const top1 = { ...probability, values: top.probabilities.map((row) => row.map((cell) => cell[0])) };
      return [probability, top1, dla.layers, dla.heads].map((grid) => ({ grid, marked: [] }));
    },
  },
];

describe("analysis reports from the CLI in Chromium at 1200 px", { skip }, () => {
  let dir: string;
  let context: BrowserContext;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tsvene-analysis-reports-"));
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

  for (const c of CASES) {
    it(`tsvene ${c.args.join(" ")}: one labelled cell per grid entry, no horizontal scroll`, async () => {
      const reportPath = join(dir, `${c.name}.html`);
      const run = spawnSync(process.execPath, [MAIN, ...c.args, "--report", reportPath, "--json", "--quiet"], {
        encoding: "utf8",
      });
      assert.equal(run.status, 0, run.stderr);
      const grids = c.grids(JSON.parse(run.stdout) as Record<string, unknown>);
      const page = await context.newPage();
      const requests: string[] = [];
      page.on("request", (request) => requests.push(request.url()));
      try {
        await page.goto(pathToFileURL(reportPath).href);
        assert.deepEqual(
          requests.filter((url) => !url.endsWith(`/${c.name}.html`)),
          [],
        );
        assert.equal(await page.title(), c.title);
        const maps = page.locator("svg.heatmap");
        assert.equal(await maps.count(), grids.length, "one heat map per grid");
        const { scrollWidth, clientWidth } = await page.evaluate(() => ({
          scrollWidth: document.documentElement.scrollWidth,
          clientWidth: document.documentElement.clientWidth,
        }));
        assert.ok(scrollWidth <= clientWidth, `page is ${scrollWidth} px wide in a ${clientWidth} px window`);
        for (const [i, { grid, marked }] of grids.entries()) {
          const map = maps.nth(i);
          assert.ok(await map.isVisible(), `heat map ${i} is visible`);
          const box = await map.boundingBox();
          assert.ok(box && box.width > 50 && box.height > 50, `heat map ${i} has size ${JSON.stringify(box)}`);
          assert.ok(box.x >= 0 && box.x + box.width <= clientWidth, `heat map ${i} fits: ${JSON.stringify(box)}`);
          const entries = grid.values.reduce((n, row) => n + row.length, 0);
          assert.equal(entries, grid.rowLabels.length * grid.colLabels.length);
          assert.equal(await map.locator("rect.cell").count(), entries, `heat map ${i}: one cell per entry`);
          const cell = await map.locator("rect.cell").first().boundingBox();
          assert.ok(cell && cell.width > 0 && cell.height > 0);
          assert.deepEqual(await map.locator(".row-labels text").allTextContents(), grid.rowLabels);
          assert.deepEqual(
            await map.locator(".column-labels text").allTextContents(),
            grid.colLabels.map((label, col) => label + (marked.includes(col) ? "*" : "")),
          );
        }
      } finally {
        await page.close();
      }
    });
  }
});

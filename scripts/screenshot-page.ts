/**
 * `npm run screenshot`: the picture of the browser page in the README (docs/page.png). Builds the
 * site, serves it as `tsvene serve` does, and in headless Chromium (Debian's /usr/bin/chromium,
 * as the browser tests launch it) runs the page's causal trace of the embedded model's example
 * fact, clicks the subject's last token at the middle layer for that run's top tokens, and saves
 * the 1200 × 800 viewport.
 */
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { staticServer } from "../src/cli/static-server.js";
import { buildWeb } from "./build-web.js";
import { CHROMIUM, CHROMIUM_ARGS } from "../test/support/chromium.js";

/** The package root: this file runs as dist/scripts/screenshot-page.js. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const OUTPUT = join(ROOT, "docs", "page.png");
const VIEWPORT = { width: 1200, height: 800 };
/** Long enough for the build's first load of the model and a 10-sample trace in the worker. */
const WAIT_MS = 120_000;

async function screenshot(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "tsvene-screenshot-"));
  const server = staticServer((await buildWeb(join(dir, "dist"))).site);
  try {
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: VIEWPORT,
    });
    try {
      const page = await context.newPage();
      await page.goto(origin);
      await page.waitForSelector('body[data-model="default"]', { timeout: WAIT_MS });
      await page.click("#run");
      await page.waitForSelector("body[data-done]", { timeout: WAIT_MS });
      const error = await page.textContent("#error");
      if (error) throw new Error(`the page's trace failed: ${error}`);
      if ((await page.locator("#panels rect.cell").count()) === 0) throw new Error("the page drew no heat map");
      await page.click('#panels rect.cell[data-row="3"][data-col="1"]');
      await page.waitForSelector("body[data-cell]", { timeout: WAIT_MS });
      await page.locator("#panels").scrollIntoViewIfNeeded();
      await page.screenshot({ path: OUTPUT });
    } finally {
      await context.close();
    }
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${OUTPUT}\n`);
}

await screenshot();

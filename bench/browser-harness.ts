/**
 * Runs the benchmark page (bench/browser-page) in headless Chromium: bundles it with the library's
 * browser forms (scripts/build-web.ts) and the page's GEMM helper (web/kernel-thread.ts), puts
 * beside it the files it fetches (both builds of the WebAssembly kernels, the HASHW-v1 manifest,
 * W1's noise, pyvene's figures), serves the folder on 127.0.0.1 with the cross-origin isolation
 * headers, and hands each message the page logs to the caller.
 */
import { copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { browserForms, copyWasmKernels } from "../scripts/build-web.js";
import { staticServer } from "../src/cli/static-server.js";
import { type BenchMessage, type BenchQuery, benchSearch, CONSOLE_PREFIX } from "./browser-page/protocol.js";
import { SHARED_BENCH } from "./hashw.js";
import { CHROMIUM, CHROMIUM_ARGS } from "../test/support/chromium.js";

/** The package root: this file runs as dist/bench/browser-harness.js. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PAGE_SOURCE = join(ROOT, "bench", "browser-page");
export const WASM_KERNELS = join(ROOT, "build", "wasm", "tsvene.wasm");
const SHARED_FILES = ["pyvene_cpu.json", "weights/gpt2s_hashw_v1_manifest.json", "weights/w1_noise.safetensors"];

/** Why the page cannot run here (no Chromium, no WebAssembly kernels), or null. */
export async function missingPrerequisite(): Promise<string | null> {
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );
  if (!(await exists(CHROMIUM))) return `Chromium not found at ${CHROMIUM} (Debian: apt-get install chromium)`;
  if (!(await exists(WASM_KERNELS))) return `${WASM_KERNELS} is missing: run npm run build:wasm (needs clang and lld)`;
  return null;
}

async function buildPage(site: string): Promise<void> {
  await esbuild.build({
    entryPoints: {
      main: join(PAGE_SOURCE, "main.ts"),
      worker: join(PAGE_SOURCE, "worker.ts"),
      "kernel-thread": join(ROOT, "web", "kernel-thread.ts"),
    },
    outdir: site,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "warning",
    plugins: [browserForms()],
  });
  await copyFile(join(PAGE_SOURCE, "index.html"), join(site, "index.html"));
  await copyWasmKernels(site);
  for (const file of SHARED_FILES) await copyFile(join(SHARED_BENCH, file), join(site, file.split("/").at(-1)!));
}

/**
 * Builds, serves and runs the page with `query`, calling `onMessage` for each message in order.
 * Resolves after "done"; rejects with the page's error, a page crash, or after `timeoutMs`.
 */
export async function runBenchPage(
  query: BenchQuery,
  onMessage: (message: BenchMessage) => void,
  timeoutMs = 20 * 60_000,
): Promise<void> {
  const problem = await missingPrerequisite();
  if (problem !== null) throw new Error(`bench:browser cannot run: ${problem}`);
  const dir = await mkdtemp(join(tmpdir(), "tsvene-bench-browser-"));
  const server = staticServer(join(dir, "site"));
  try {
    await buildPage(join(dir, "site"));
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const context = await chromium.launchPersistentContext(join(dir, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    try {
      const page = await context.newPage();
      await new Promise<void>((finished, failed) => {
        const timer = setTimeout(
          () => failed(new Error(`the page did not finish in ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
        const end = (error?: Error) => {
          clearTimeout(timer);
          if (error) failed(error);
          else finished();
        };
        page.on("crash", () => end(new Error("the page crashed (out of memory?)")));
        page.on("pageerror", (error) => end(error));
        page.on("console", (entry) => {
          const text = entry.text();
          if (!text.startsWith(CONSOLE_PREFIX)) return;
          const message = JSON.parse(text.slice(CONSOLE_PREFIX.length)) as BenchMessage;
          try {
            onMessage(message);
          } catch (error) {
            end(error as Error);
          }
          if (message.type === "done") end();
          else if (message.type === "error") end(new Error(`the page: ${message.message}`));
        });
        page.goto(origin + benchSearch(query)).catch(end);
      });
    } finally {
      await context.close();
    }
  } finally {
    server.close();
    server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
}

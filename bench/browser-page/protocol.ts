/**
 * What the benchmark's worker reports, in order: GEMM rows, the weights' load, the W1 timing, then
 * done (or an error). The page prints each message as lines (report.ts) and logs it on the console
 * as CONSOLE_PREFIX + JSON, which is how bench/browser.ts reads it.
 */
import type { TraceResult } from "../../src/index.js";

export const CONSOLE_PREFIX = "tsvene-bench ";

/**
 * The page's query: `runs` timed W1 runs after a warm-up, alternating between one kernel thread and
 * all of them where the page has more (0: one untimed run on all, for the check only).
 */
export interface BenchQuery {
  gemm: boolean;
  runs: number;
}

/** One kernel set's time for one product. */
export interface GemmTiming {
  medianMs: number;
  gflops: number;
  runs: number;
}

export type BenchMessage =
  | { type: "status"; text: string }
  | {
      type: "gemm";
      /** [m, k] · [k, n]. */
      m: number;
      k: number;
      n: number;
      js: GemmTiming;
      /** On one thread. */
      wasm: GemmTiming;
      /** On all the page's kernel threads, alternated with one; null where the page has one. */
      wasmThreads: { threads: number; timing: GemmTiming } | null;
      /** max |wasm − js| over the product's elements. */
      maxDifference: number;
    }
  | {
      type: "load";
      tensors: number;
      parameters: number;
      generateS: number;
      /** The sha256 check of every tensor against the manifest (crypto.subtle in the browser). */
      verifyS: number;
      loadStateDictS: number;
    }
  | {
      type: "w1";
      where: "browser" | "node";
      kernels: string;
      /** Kernel threads the GEMMs ran on. */
      threads: number;
      /** Timed runs after the warm-up, as pyvene was timed; 0 when the query asked for the check only. */
      runs: number;
      /** Over the timed runs; with none, the one run's time. */
      minS: number;
      medianS: number;
      /** The logit grid, row-major 12 × 10, and the clean and corrupted logits of the target. */
      grid: number[];
      clean: number;
      corrupted: number;
    }
  | { type: "done" }
  | { type: "error"; message: string };

/** The W1 message for a timedW1 (bench/w1.ts) result. */
export function w1Message(
  where: "browser" | "node",
  kernels: string,
  w1: { result: TraceResult; min: number; median: number; runs: number },
  threads = 1,
): BenchMessage {
  const { grid, clean, corrupted } = w1.result;
  return {
    type: "w1",
    where,
    kernels,
    threads,
    runs: w1.runs,
    minS: w1.min,
    medianS: w1.median,
    grid: [...grid.values],
    clean,
    corrupted,
  };
}

/** The page's query string for `query`, and back. */
export function benchSearch(query: BenchQuery): string {
  return `?gemm=${query.gemm ? 1 : 0}&runs=${query.runs}`;
}

export function parseBenchSearch(search: string): BenchQuery {
  const params = new URLSearchParams(search);
  const unknown = [...params.keys()].filter((key) => key !== "gemm" && key !== "runs");
  if (unknown.length > 0) throw new Error(`the page's query: unknown ${unknown.join(", ")} (it takes gemm and runs)`);
  const runs = params.get("runs") ?? "3";
  if (!/^\d+$/.test(runs)) throw new RangeError(`the page's query: runs must be a non-negative integer, got ${runs}`);
  const gemm = params.get("gemm") ?? "1";
  if (gemm !== "0" && gemm !== "1") throw new RangeError(`the page's query: gemm must be 0 or 1, got ${gemm}`);
  return { gemm: gemm === "1", runs: Number(runs) };
}

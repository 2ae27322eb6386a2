/**
 * The browser benchmark's page (bench/browser-page, run by bench/browser-harness.ts in headless
 * Chromium): the HASHW-v1 weights it generates pass the manifest's sha256 check and have GPT-2
 * small's parameter count, and its W1 causal trace on the WebAssembly kernels gives pyvene's logit
 * grid (../shared/bench/pyvene_cpu.json) within 1e-4, on every core's kernel thread and on one
 * alike, bit for bit. A bad query is refused naming the field.
 * Timings are printed by npm run bench:browser, never asserted.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { missingPrerequisite, runBenchPage } from "../bench/browser-harness.js";
import { type BenchMessage, benchSearch, parseBenchSearch } from "../bench/browser-page/protocol.js";
import { SHARED_BENCH } from "../bench/hashw.js";
import { gridDifference } from "../bench/w1.js";
import { WASM_THREADS_MAX } from "../src/tensor/kernels/wasm-team.js";

const problem = await missingPrerequisite();
const pyvene = JSON.parse(readFileSync(join(SHARED_BENCH, "pyvene_cpu.json"), "utf8")).configs.t1.checks.W1 as {
  grid_logit_target: number[][];
  clean_logit_target: number;
  corrupt_logit_target: number;
};

describe("the browser benchmark page's query", () => {
  it("carries what the harness asks for, and refuses anything else naming it", () => {
    assert.deepEqual(parseBenchSearch(benchSearch({ gemm: false, runs: 5 })), { gemm: false, runs: 5 });
    assert.deepEqual(parseBenchSearch(""), { gemm: true, runs: 3 });
    assert.throws(() => parseBenchSearch("?runs=3&run=2"), /unknown run \(it takes gemm and runs\)/);
    assert.throws(() => parseBenchSearch("?runs="), /runs must be a non-negative integer, got $/);
    assert.throws(() => parseBenchSearch("?runs=1.5"), /runs must be a non-negative integer, got 1.5/);
    assert.throws(() => parseBenchSearch("?gemm=yes"), /gemm must be 0 or 1, got yes/);
  });
});

describe("the browser benchmark page", { skip: problem ?? false }, () => {
  it("generates the checked HASHW-v1 weights and traces W1 as pyvene did, within 1e-4", async () => {
    const messages: BenchMessage[] = [];
    await runBenchPage({ gemm: false, runs: 0 }, (message) => messages.push(message));
    const kinds = messages.map((m) => m.type).filter((type) => type !== "status");
    assert.deepEqual(kinds, ["load", "w1", "done"]);
    const load = messages.find((m) => m.type === "load")!;
    assert.equal(load.tensors, 148);
    // The count ../shared/bench/README.md gives for GPT-2 small with tied embeddings.
    assert.equal(load.parameters, 124_439_808);
    const w1 = messages.find((m) => m.type === "w1")!;
    assert.equal(w1.where, "browser");
    assert.equal(w1.kernels, "wasm");
    assert.equal(w1.grid.length, 12 * 10);
    w1.grid.forEach((value, i) => {
      const expected = pyvene.grid_logit_target[Math.floor(i / 10)][i % 10];
      assert.ok(
        Math.abs(value - expected) <= 1e-4,
        `layer ${Math.floor(i / 10)}, position ${i % 10}: ${value} vs ${expected}`,
      );
    });
    assert.ok(Math.abs(w1.clean - pyvene.clean_logit_target) <= 1e-4, `clean ${w1.clean}`);
    assert.ok(Math.abs(w1.corrupted - pyvene.corrupt_logit_target) <= 1e-4, `corrupted ${w1.corrupted}`);
  });

  it("times W1 on one kernel thread and on one per core alternately, each giving the same bits", async () => {
    const messages: BenchMessage[] = [];
    await runBenchPage({ gemm: false, runs: 1 }, (message) => messages.push(message));
    const runs = messages.filter((m) => m.type === "w1");
    const cores = Math.min(availableParallelism(), WASM_THREADS_MAX);
    assert.deepEqual(
      runs.map((m) => m.threads),
      cores > 1 ? [1, cores] : [1],
    );
    for (const run of runs) {
      assert.equal(run.runs, 1);
      assert.deepEqual(run.grid, runs[0].grid, `${run.threads} threads`);
      assert.ok(gridDifference(run.grid, pyvene.grid_logit_target) <= 1e-4, `${run.threads} threads`);
    }
  });

  it("refuses a bad query naming it, before any work", async () => {
    const messages: BenchMessage[] = [];
    await assert.rejects(
      runBenchPage({ gemm: false, runs: -1 }, (message) => messages.push(message)),
      /runs must be a non-negative integer, got -1/,
    );
    assert.deepEqual(
      messages.map((m) => m.type),
      ["error"],
    );
  });
});

/** The lines the page shows and bench/browser.ts prints for each message of the benchmark's worker. */
import { gridDifference, type PyveneTiming, type PyveneW1 } from "../w1.js";
import type { BenchMessage, GemmTiming } from "./protocol.js";

function seconds(timing: PyveneTiming): string {
  return `${timing.min_s.toFixed(2)} / ${timing.median_s.toFixed(2)} s`;
}

function gemmFigure(timing: GemmTiming): string {
  return `${timing.gflops.toFixed(2)} GFLOP/s (median ${timing.medianMs.toFixed(1)} ms of ${timing.runs})`;
}

/** `pyvene` is pyvene_cpu.json's W1 part, printed beside the W1 timing and checked against. */
export function reportLines(message: BenchMessage, pyvene: PyveneW1): string[] {
  switch (message.type) {
    case "status":
      return [message.text];
    case "gemm": {
      const { m, k, n, js, wasm, wasmThreads } = message;
      const threaded = wasmThreads
        ? [
            `  wasm on ${wasmThreads.threads} threads ${gemmFigure(wasmThreads.timing)}: ` +
              `${(wasmThreads.timing.gflops / wasm.gflops).toFixed(2)}× one thread (alternated, best of 3 rounds)`,
          ]
        : [];
      return [
        `GEMM [${m}×${k}]·[${k}×${n}]: wasm ${gemmFigure(wasm)}, js ${gemmFigure(js)}; ` +
          `wasm/js ${(wasm.gflops / js.gflops).toFixed(1)}× ` +
          `(max |wasm − js| ${message.maxDifference.toExponential(1)})`,
        ...threaded,
      ];
    }
    case "load":
      return [
        `weights: HASHW-v1 GPT-2-small, ${message.tensors} tensors (${message.parameters.toLocaleString("en")} ` +
          `parameters) generated in ${message.generateS.toFixed(2)} s, sha256-checked in ` +
          `${message.verifyS.toFixed(2)} s, loaded into the model in ${message.loadStateDictS.toFixed(2)} s ` +
          "(not timed below)",
      ];
    case "w1": {
      const timing =
        message.runs === 0
          ? `${message.minS.toFixed(3)} s (one run, check only)`
          : `${message.minS.toFixed(3)} s (min) / ${message.medianS.toFixed(3)} s (median) of ${message.runs} ` +
            "runs after a warm-up";
      const faster = (theirs: PyveneTiming) =>
        theirs.min_s >= message.minS
          ? `${(theirs.min_s / message.minS).toFixed(1)}× faster`
          : `${(message.minS / theirs.min_s).toFixed(1)}× slower`;
      const difference = gridDifference(message.grid, pyvene.checks.grid_logit_target);
      return [
        `W1 causal tracing (120 cells) in ${message.where === "browser" ? "the browser" : "Node"}, ` +
          `${message.kernels} kernels on ${message.threads === 1 ? "one thread" : `${message.threads} threads`}: ` +
          timing,
        `  pyvene (t1, min / median): tutorial-style ${seconds(pyvene.tutorial)} → ${faster(pyvene.tutorial)}; ` +
          `fastest expression ${seconds(pyvene.fastest)} → ${faster(pyvene.fastest)} (min vs min)`,
        `  check: logit grid max |Δ| vs pyvene ${difference.toExponential(2)}; clean logit ` +
          `${message.clean.toFixed(4)} vs ${pyvene.checks.clean_logit_target.toFixed(4)}, corrupted ` +
          `${message.corrupted.toFixed(4)} vs ${pyvene.checks.corrupt_logit_target.toFixed(4)}`,
      ];
    }
    case "done":
      return [];
    case "error":
      return [`error: ${message.message}`];
  }
}

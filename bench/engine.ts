/**
 * Engine benchmark: matmul GFLOP/s, one GPT-2-small block forward and forward+backward, and
 * resident memory over 1,000 forward+backward iterations. With Debian's python3-torch present
 * (optional, never a dependency), the same block is timed in PyTorch in this run for the ratios.
 *
 *   npm run bench:engine [-- --iterations 1000 --no-torch]
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as tv from "../src/index.js";
import { block, causalMask, D_MODEL, randomBlock } from "./gpt2-block.js";

const args = process.argv.slice(2);
const leakIterations = Number(args[args.indexOf("--iterations") + 1] ?? 1000) || 1000;
const withTorch = !args.includes("--no-torch");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeMs(fn: () => void, runs: number, warmup = 3): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

function rssMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

const gen = new tv.Generator(0);
console.log(`kernels: ${tv.kernels().name}`);

const results: Record<string, number> = {};
for (const [m, k, n] of [
  [128, 768, 3072],
  [512, 768, 768],
]) {
  const a = tv.randn([m, k], { generator: gen });
  const b = tv.randn([k, n], { generator: gen });
  const ms = timeMs(() => tv.matmul(a, b), 30);
  const gflops = (2 * m * k * n) / (ms * 1e6);
  results[`matmul_${m}x${k}x${n}_gflops`] = gflops;
  console.log(`matmul [${m}×${k}]@[${k}×${n}]: ${gflops.toFixed(1)} GFLOP/s (median ${ms.toFixed(3)} ms)`);
}

const SEQ = 128;
const weights = randomBlock(gen);
const mask = causalMask(SEQ);
const x = tv.randn([1, SEQ, D_MODEL], { generator: gen });
const rotation = tv
  .add(tv.randn([D_MODEL, D_MODEL], { std: 0.01, generator: gen }), 0)
  .detach()
  .requireGrad();
const upstream = tv.randn([1, SEQ, D_MODEL], { generator: gen });

const forward = () => tv.noGrad(() => block(tv.matmul(x, rotation), weights, mask));
const forwardBackward = () => {
  rotation.zeroGrad();
  block(tv.matmul(x, rotation), weights, mask).backward(upstream);
};
const fwdMs = timeMs(forward, 30);
const fwdBwdMs = timeMs(forwardBackward, 30);
console.log(
  `GPT-2 block (batch 1, seq ${SEQ}, d ${D_MODEL}): forward ${fwdMs.toFixed(2)} ms, ` +
    `forward+backward ${fwdBwdMs.toFixed(2)} ms (medians of 30)`,
);

const rssSamples = [rssMiB()];
for (let i = 1; i <= leakIterations; i++) {
  forwardBackward();
  if (i % Math.ceil(leakIterations / 4) === 0 || i === leakIterations) rssSamples.push(rssMiB());
}
console.log(
  `RSS over ${leakIterations} forward+backward iterations (after GC, at 0, ¼, ½, ¾, all): ` +
    `${rssSamples.map((r) => r.toFixed(0)).join(" → ")} MiB`,
);

const torchScript = fileURLToPath(new URL("../../bench/reference/torch_block.py", import.meta.url));
if (withTorch && existsSync("/usr/bin/python3") && existsSync(torchScript)) {
  const run = spawnSync("/usr/bin/python3", [torchScript], { encoding: "utf8" });
  if (run.status === 0) {
    const torch = JSON.parse(run.stdout.trim().split("\n").pop()!) as {
      forward_ms: number;
      forward_backward_ms: number;
      matmul_gflops: number[];
      torch: string;
    };
    console.log(
      `PyTorch ${torch.torch} (1 thread + OpenBLAS), same block in this run: ` +
        `forward ${torch.forward_ms.toFixed(2)} ms, forward+backward ${torch.forward_backward_ms.toFixed(2)} ms; ` +
        `matmul ${torch.matmul_gflops.map((g) => g.toFixed(1)).join(" / ")} GFLOP/s`,
    );
    console.log(
      `ratios tsvene/PyTorch: forward ${(fwdMs / torch.forward_ms).toFixed(2)}× (target ≤ 1.3), ` +
        `forward+backward ${(fwdBwdMs / torch.forward_backward_ms).toFixed(2)}× (target ≤ 1.5)`,
    );
  } else {
    console.log(`PyTorch reference skipped: ${(run.stderr || run.error?.message || "").trim().split("\n").pop()}`);
  }
} else if (withTorch) {
  console.log("PyTorch reference skipped: /usr/bin/python3 with python3-torch not found");
}

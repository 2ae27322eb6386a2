/**
 * Safetensors loading, mapped versus read: a ~2 GiB checkpoint (F32, and the same size in BF16)
 * written once into the system's temporary folder, loaded in a fresh process per run so that
 * RSS is the load's alone. Each run prints the load's wall and CPU seconds, then those of touching
 * every page of every weight (a mapped load pays its page-ins there), with RSS before, after the
 * load, after the touch, and at its peak. CPU seconds (user + system) are the steadier figure on a
 * busy machine. "warm" runs read the file through once beforehand; "cold" runs first drop it from
 * the page cache (GNU dd's nocache).
 *
 *   npm run bench:load [-- --runs 3]
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readSafetensors, type SafetensorsIo, writeSafetensors } from "../src/io/safetensors.js";
import { Tensor } from "../src/tensor/index.js";

const TENSORS = 32;
const TENSOR_ELEMENTS = 16 * 1024 * 1024;
const PAGE_BYTES = 4096;
const MIB = 1024 * 1024;

type LoadDtype = "float32" | "auto";

interface ChildResult {
  loadSeconds: number;
  loadCpuSeconds: number;
  touchSeconds: number;
  touchCpuSeconds: number;
  rssBeforeMiB: number;
  rssLoadedMiB: number;
  rssTouchedMiB: number;
  peakRssMiB: number;
}

const args = process.argv.slice(2);

if (args[0] === "--child") {
  const [, path, io, dtype] = args;
  const rssBefore = process.memoryUsage().rss;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { tensors } = await readSafetensors(path, { io: io as SafetensorsIo, dtype: dtype as LoadDtype });
  const t1 = performance.now();
  const cpu1 = process.cpuUsage(cpu0);
  const rssLoaded = process.memoryUsage().rss;
  let checksum = 0;
  for (const t of tensors.values()) {
    const storage = t instanceof Tensor ? (t.half?.bits ?? t.data) : t.data;
    const step = PAGE_BYTES / storage.BYTES_PER_ELEMENT;
    for (let i = 0; i < storage.length; i += step) checksum += storage[i];
  }
  const t2 = performance.now();
  const cpu2 = process.cpuUsage(cpu0);
  const cpuSeconds = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1e6;
  const result: ChildResult & { checksum: number } = {
    loadSeconds: (t1 - t0) / 1000,
    loadCpuSeconds: cpuSeconds(cpu1),
    touchSeconds: (t2 - t1) / 1000,
    touchCpuSeconds: cpuSeconds(cpu2) - cpuSeconds(cpu1),
    rssBeforeMiB: rssBefore / MIB,
    rssLoadedMiB: rssLoaded / MIB,
    rssTouchedMiB: process.memoryUsage().rss / MIB,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    checksum,
  };
  console.log(JSON.stringify(result));
  process.exit(0);
}

const runs = Number(args[args.indexOf("--runs") + 1] ?? 3) || 3;
const folder = join(tmpdir(), "tsvene-bench-load");
const f32Path = join(folder, `f32-${TENSORS}x${TENSOR_ELEMENTS}.safetensors`);
const bf16Path = join(folder, `bf16-${2 * TENSORS}x${TENSOR_ELEMENTS}.safetensors`);

/** Deterministic values spread over several binades, so BF16 rounding has work to do. */
function weights(seed: number): Tensor {
  const data = new Float32Array(TENSOR_ELEMENTS);
  let state = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state / 2 ** 32 - 0.5) * 0.02;
  }
  return new Tensor(data, [TENSOR_ELEMENTS / 1024, 1024]);
}

async function writeCheckpoints(): Promise<void> {
  if (existsSync(f32Path) && existsSync(bf16Path)) return;
  await mkdir(folder, { recursive: true });
  console.log(`writing the checkpoints into ${folder} (once)…`);
  const tensors = new Map<string, Tensor>();
  for (let i = 0; i < TENSORS; i++) tensors.set(`layers.${i}.weight`, weights(i + 1));
  await writeSafetensors(f32Path, tensors);
  const doubled = new Map<string, Tensor>();
  for (const [name, t] of tensors) {
    doubled.set(`a.${name}`, t);
    doubled.set(`b.${name}`, t);
  }
  await writeSafetensors(bf16Path, doubled, { dtype: "BF16" });
}

function dropFromPageCache(path: string): boolean {
  return spawnSync("dd", [`if=${path}`, "iflag=nocache", "count=0"], { stdio: "ignore" }).status === 0;
}

function runChild(path: string, io: SafetensorsIo, dtype: LoadDtype, cold: boolean): ChildResult {
  if (cold && !dropFromPageCache(path)) throw new Error("cold runs need GNU dd (iflag=nocache)");
  if (!cold) spawnSync("cat", [path], { stdio: "ignore" });
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", path, io, dtype], {
    encoding: "utf8",
  });
  if (child.status !== 0) throw new Error(`child ${io} ${path} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as ChildResult;
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

const COLUMNS: [string, (r: ChildResult) => string][] = [
  ["load s", (r) => r.loadSeconds.toFixed(3)],
  ["cpu s", (r) => r.loadCpuSeconds.toFixed(3)],
  ["touch s", (r) => r.touchSeconds.toFixed(3)],
  ["cpu s", (r) => r.touchCpuSeconds.toFixed(3)],
  ["RSS MiB: before", (r) => r.rssBeforeMiB.toFixed(0)],
  ["loaded", (r) => r.rssLoadedMiB.toFixed(0)],
  ["touched", (r) => r.rssTouchedMiB.toFixed(0)],
  ["peak", (r) => r.peakRssMiB.toFixed(0)],
];

await writeCheckpoints();
console.log(`load average ${loadAverage()}; ${runs} runs each, the one with the least wall time shown`);
console.log(`file  dtype    cache io    ${COLUMNS.map(([title]) => title.padStart(7)).join("  ")}`);
const cases: [string, string, LoadDtype][] = [
  ["f32", f32Path, "float32"],
  ["bf16", bf16Path, "float32"],
  ["bf16", bf16Path, "auto"],
];
const wall = (r: ChildResult) => r.loadSeconds + r.touchSeconds;
for (const [label, path, dtype] of cases) {
  for (const cold of [false, true]) {
    const best = new Map<SafetensorsIo, ChildResult>();
    for (let run = 0; run < runs; run++) {
      for (const io of ["mmap", "read"] as const) {
        const result = runChild(path, io, dtype, cold);
        const previous = best.get(io);
        if (previous === undefined || wall(result) < wall(previous)) best.set(io, result);
      }
    }
    for (const [io, r] of best) {
      const row = COLUMNS.map(([title, value]) => value(r).padStart(Math.max(7, title.length))).join("  ");
      console.log(`${label.padEnd(5)} ${dtype.padEnd(8)} ${(cold ? "cold" : "warm").padEnd(5)} ${io.padEnd(5)} ${row}`);
    }
  }
}
console.log(`load average ${loadAverage()}`);

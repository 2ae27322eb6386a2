/**
 * Builds the WebAssembly kernels, build/wasm/tsvene.wasm, from native/kernels.c (shared with the
 * addon) and native/wasm.c with clang's wasm32 target: `npm run build:wasm`, also run by
 * `npm run build` and `npm install`; beside it, build/wasm/tsvene-threads.wasm, the same kernels on
 * a shared memory that GEMM helpers in other workers share (src/tensor/kernels/wasm-team.ts).
 * Without clang or wasm-ld (Debian: apt-get install clang lld) it says so in one line and exits 0,
 * since the package works without it (the addon or the TypeScript kernels run instead); a compile
 * error is a failure.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { findPackageRoot } from "../src/platform/node.js";
import { WASM_MAX_PAGES } from "../src/tensor/kernels/wasm.js";
import { THREADED_INITIAL_PAGES, WASM_THREADS_MAX } from "../src/tensor/kernels/wasm-team.js";

const FLAGS = [
  "--target=wasm32",
  "-O3",
  // 128-bit SIMD, and bulk memory so that memcpy/memset become instructions (there is no libc).
  "-msimd128",
  "-mbulk-memory",
  "-ffreestanding",
  "-nostdlib",
  // As for the addon (binding.gyp): honour `omp simd`, no errno, no FP exception flags.
  "-fopenmp-simd",
  "-fno-math-errno",
  "-fno-trapping-math",
  "-Wall",
  "-Wextra",
  // clang reports the `omp simd` loops it leaves scalar (a max reduction); they are still correct.
  "-Wno-pass-failed",
  "-Wl,--no-entry",
  // The stack below the data, so an overflow traps instead of overwriting it.
  "-Wl,--stack-first",
  "-Wl,-z,stack-size=1048576",
  // Operands are copied into the memory, which may grow to the whole 4 GiB of wasm32.
  `-Wl,--max-memory=${WASM_MAX_PAGES * 65536}`,
  "-Wl,--strip-debug",
];

/**
 * The threaded build: atomics on a memory it imports, shared, of the size the page creates; each
 * helper's instance gets its own stack by setting the exported __stack_pointer.
 */
const THREADED_FLAGS = [
  "-DTSVENE_WASM_THREADS",
  `-DTHREADS_MAX=${WASM_THREADS_MAX}`,
  "-matomics",
  "-mmutable-globals",
  "-Wl,--import-memory",
  "-Wl,--shared-memory",
  `-Wl,--initial-memory=${THREADED_INITIAL_PAGES * 65536}`,
  "-Wl,--export=__stack_pointer",
];

/** Why the toolchain cannot build, or null when it can. */
function missingToolchain(): string | null {
  const clang = spawnSync("clang", ["--version"], { encoding: "utf8" });
  if (clang.error || clang.status !== 0) return "clang was not found";
  // clang runs wasm-ld from its own folder or PATH; it prints the bare name when it has none.
  const linker = spawnSync("clang", ["--target=wasm32", "-print-prog-name=wasm-ld"], { encoding: "utf8" });
  const path = linker.stdout.trim();
  if (isAbsolute(path) && existsSync(path)) return null;
  const onPath = spawnSync(path || "wasm-ld", ["--version"], { encoding: "utf8" });
  return onPath.error || onPath.status !== 0 ? "wasm-ld was not found" : null;
}

const root = findPackageRoot();
const missing = missingToolchain();
if (missing) {
  console.warn(
    `tsvene: WebAssembly kernels not built (${missing}; install clang and lld); the other kernels will be used`,
  );
  process.exit(0);
}
const sources = ["kernels.c", "wasm.c"].map((file) => join(root, "native", file));
for (const [name, flags] of [
  ["tsvene.wasm", FLAGS],
  ["tsvene-threads.wasm", [...FLAGS, ...THREADED_FLAGS]],
] as const) {
  const output = join(root, "build", "wasm", name);
  mkdirSync(dirname(output), { recursive: true });
  const compile = spawnSync("clang", [...flags, "-o", output, ...sources], { stdio: "inherit" });
  if (compile.error || compile.status !== 0) {
    console.error(`tsvene: building ${output} failed`);
    process.exit(1);
  }
}

/**
 * The WebAssembly kernel set: build/wasm/tsvene.wasm (native/kernels.c, the addon's own kernels,
 * plus native/wasm.c's SIMD sgemm; built by scripts/build-wasm.ts), from bytes the platform gives
 * (Platform.wasmKernelBytes). The module computes in its own linear memory, which the caller's
 * arrays are not part of: each call checks its arguments as the TypeScript kernels do (checks.ts),
 * copies what the kernel reads into a scratch region of that memory (grown when a call needs more,
 * reused by the next), runs, and copies the outputs back. So outputs may be the input arrays
 * wherever the TypeScript kernels allow it, and a failed check or allocation writes nothing.
 *
 * The threaded build (build/wasm/tsvene-threads.wasm) runs on a shared memory given with the bytes,
 * where helpers in other workers take parts of every large GEMM (wasm-team.ts).
 */
import type { Platform } from "../../platform/index.js";
import {
  BINARY_OPS,
  checkAttentionSoftmax,
  checkBinaryStrided,
  checkCopyStrided,
  checkLayerNormRows,
  checkLayerNormRowsBackward,
  checkRmsNormRows,
  checkRmsNormRowsBackward,
  checkSgemmBatch,
  checkSoftmaxRows,
  checkSoftmaxRowsBackward,
  checkUnary,
  checkSelect,
  checkUnaryBackward,
} from "./checks.js";
import { powC } from "./js.js";
import { KERNEL_FUNCTION_NAMES, type KernelFunctions, type Kernels } from "./types.js";

/** A memory address in the module (a wasm32 i32). */
type Address = number;
/** An export of native/wasm.c: arguments in its C order, addresses, sizes, doubles, and 0/1 for flags. */
type ModuleFunction = (...args: number[]) => void;

interface ModuleExports extends Record<keyof KernelFunctions, ModuleFunction> {
  memory: WebAssembly.Memory;
  heapBase(): Address;
}

const PAGE_BYTES = 65536;
/** The whole 4 GiB of wasm32, which the kernels' memory may grow to. */
export const WASM_MAX_PAGES = 65536;

/**
 * The module's memory from its heap base on, handed out afresh to each call. `reserve` places all
 * of a call's blocks at once, growing the memory first if needed, since growing detaches every view
 * made before; the views are made after it.
 */
class Scratch {
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly base: Address,
  ) {}

  /** Addresses of blocks of the given byte sizes, each 16-byte aligned (room for f32x4 and doubles). */
  reserve(byteLengths: readonly number[]): Address[] {
    let top = this.base;
    const addresses = byteLengths.map((bytes) => {
      const address = Math.ceil(top / 16) * 16;
      top = address + bytes;
      return address;
    });
    const missing = top - this.memory.buffer.byteLength;
    if (missing > 0) {
      try {
        this.memory.grow(Math.ceil(missing / PAGE_BYTES));
      } catch (cause) {
        throw new RangeError(
          `the WebAssembly kernels' memory cannot grow to ${top} bytes for this call (wasm32 holds at most 4 GiB)`,
          { cause },
        );
      }
    }
    return addresses;
  }

  f32(address: Address, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, address, length);
  }

  i32(address: Address, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, address, length);
  }
}

/**
 * The parts of one sgemmBatch operand that its matrices cover: the spans [offset, offset + extent)
 * merged where they overlap or touch, placed one after another in the module's memory. `offsets`
 * are the matrices' offsets in that packed copy; overlapping matrices stay overlapping there.
 */
interface PackedOperand {
  spans: { start: number; end: number; at: number }[];
  length: number;
  offsets: Int32Array;
}

function packOperand(offsets: Int32Array, extent: number): PackedOperand {
  const spans: PackedOperand["spans"] = [];
  const packed = new Int32Array(offsets.length);
  if (extent === 0) return { spans, length: 0, offsets: packed };
  const sorted = Array.from(new Set(offsets)).sort((x, y) => x - y);
  let length = 0;
  for (const start of sorted) {
    const last = spans[spans.length - 1];
    if (last && start <= last.end) {
      length += Math.max(0, start + extent - last.end);
      last.end = Math.max(last.end, start + extent);
    } else {
      spans.push({ start, end: start + extent, at: length });
      length += extent;
    }
  }
  // Matrices in order of offset, so each finds its span by walking forward.
  const order = Array.from(offsets.keys()).sort((i, j) => offsets[i] - offsets[j]);
  let span = 0;
  for (const i of order) {
    while (offsets[i] >= spans[span].end) span++;
    packed[i] = spans[span].at + offsets[i] - spans[span].start;
  }
  return { spans, length, offsets: packed };
}

/** Elements of a stored matrix from its first to its last, as checks.ts computes them. */
function matrixExtent(rows: number, cols: number, ld: number): number {
  return rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;
}

/** The last element a strided read touches, offset + Σ (dims[d] − 1)·strides[d], for dims without a 0. */
function lastIndex(dims: Int32Array, offset: number, strides: Int32Array): number {
  let last = offset;
  for (let d = 0; d < dims.length; d++) last += (dims[d] - 1) * strides[d];
  return last;
}

/** The kernels over an instantiated module. */
function kernelsOver(module: ModuleExports): Kernels {
  const scratch = new Scratch(module.memory, module.heapBase());

  /** Copies `arrays` (null: none) in, returning their addresses (null: 0). */
  function copyIn(arrays: readonly (Float32Array | null)[], extra: readonly number[] = []): Address[] {
    const addresses = scratch.reserve([...arrays.map((array) => 4 * (array?.length ?? 0)), ...extra]);
    arrays.forEach((array, i) => {
      if (array) scratch.f32(addresses[i], array.length).set(array);
    });
    return addresses.map((address, i) => (i < arrays.length && !arrays[i] ? 0 : address));
  }

  function copyOut(address: Address, target: Float32Array | null): void {
    if (target) target.set(scratch.f32(address, target.length));
  }

  // The kernels allow an output to be the very same array as an input of its shape, so each
  // writes over its input's copy.
  function unary(run: ModuleFunction, kernel: string): (x: Float32Array, out: Float32Array) => void {
    return (x, out) => {
      checkUnary(kernel, x, out);
      const [xAt] = copyIn([x]);
      run(xAt, xAt, x.length);
      copyOut(xAt, out);
    };
  }

  function unaryBackward(
    run: ModuleFunction,
    kernel: string,
  ): (x: Float32Array, gradOut: Float32Array, gradIn: Float32Array) => void {
    return (x, gradOut, gradIn) => {
      checkUnaryBackward(kernel, x, gradOut, gradIn);
      const [xAt, gradOutAt] = copyIn([x, gradOut]);
      run(xAt, gradOutAt, gradOutAt, x.length);
      copyOut(gradOutAt, gradIn);
    };
  }

  return {
    name: "wasm",

    sgemmBatch(transA, transB, m, n, k, alpha, a, lda, aOffsets, b, ldb, bOffsets, beta, c, ldc, cOffsets) {
      checkSgemmBatch(transA, transB, m, n, k, alpha, a, lda, aOffsets, b, ldb, bOffsets, beta, c, ldc, cOffsets);
      if (m === 0 || n === 0 || cOffsets.length === 0) return;
      const operands = [
        { array: a, packed: packOperand(aOffsets, matrixExtent(transA ? k : m, transA ? m : k, lda)) },
        { array: b, packed: packOperand(bOffsets, matrixExtent(transB ? n : k, transB ? k : n, ldb)) },
        { array: c, packed: packOperand(cOffsets, matrixExtent(m, n, ldc)) },
      ];
      const count = cOffsets.length;
      const addresses = scratch.reserve([
        ...operands.map(({ packed }) => 4 * packed.length),
        ...operands.map(() => 4 * count),
      ]);
      operands.forEach(({ array, packed }, i) => {
        const region = scratch.f32(addresses[i], packed.length);
        for (const span of packed.spans) region.set(array.subarray(span.start, span.end), span.at);
        scratch.i32(addresses[3 + i], count).set(packed.offsets);
      });
      const [aAt, bAt, cAt, aOffsetsAt, bOffsetsAt, cOffsetsAt] = addresses;
      module.sgemmBatch(
        transA ? 1 : 0,
        transB ? 1 : 0,
        m,
        n,
        k,
        alpha,
        aAt,
        lda,
        aOffsetsAt,
        bAt,
        ldb,
        bOffsetsAt,
        beta,
        cAt,
        ldc,
        cOffsetsAt,
        count,
      );
      // The C spans go back whole: what lies between the rows of a matrix comes back unchanged.
      const cRegion = scratch.f32(cAt, operands[2].packed.length);
      for (const span of operands[2].packed.spans) {
        c.set(cRegion.subarray(span.at, span.at + span.end - span.start), span.start);
      }
    },

    binaryStrided(op, dims, a, aOffset, aStrides, b, bOffset, bStrides, out) {
      const size = checkBinaryStrided(op, dims, a, aOffset, aStrides, b, bOffset, bStrides, out);
      if (size === 0) return;
      const rank = dims.length;
      const aEnd = lastIndex(dims, aOffset, aStrides) + 1;
      const bEnd = lastIndex(dims, bOffset, bStrides) + 1;
      const [dimsAt, aStridesAt, bStridesAt, aAt, bAt, outAt] = scratch.reserve([
        4 * rank,
        4 * rank,
        4 * rank,
        4 * (aEnd - aOffset),
        4 * (bEnd - bOffset),
        4 * size,
      ]);
      scratch.i32(dimsAt, rank).set(dims);
      scratch.i32(aStridesAt, rank).set(aStrides);
      scratch.i32(bStridesAt, rank).set(bStrides);
      scratch.f32(aAt, aEnd - aOffset).set(a.subarray(aOffset, aEnd));
      scratch.f32(bAt, bEnd - bOffset).set(b.subarray(bOffset, bEnd));
      module.binaryStrided(BINARY_OPS.indexOf(op), rank, dimsAt, aAt, 0, aStridesAt, bAt, 0, bStridesAt, outAt, size);
      copyOut(outAt, out);
    },

    copyStrided(dims, src, srcOffset, srcStrides, out) {
      const size = checkCopyStrided(dims, src, srcOffset, srcStrides, out);
      if (size === 0) return;
      const rank = dims.length;
      const srcEnd = lastIndex(dims, srcOffset, srcStrides) + 1;
      const [dimsAt, stridesAt, srcAt, outAt] = scratch.reserve([
        4 * rank,
        4 * rank,
        4 * (srcEnd - srcOffset),
        4 * size,
      ]);
      scratch.i32(dimsAt, rank).set(dims);
      scratch.i32(stridesAt, rank).set(srcStrides);
      scratch.f32(srcAt, srcEnd - srcOffset).set(src.subarray(srcOffset, srcEnd));
      module.copyStrided(rank, dimsAt, srcAt, 0, stridesAt, outAt, size);
      copyOut(outAt, out);
    },

    geluTanh: unary(module.geluTanh, "geluTanh"),
    geluTanhBackward: unaryBackward(module.geluTanhBackward, "geluTanhBackward"),
    geluErf: unary(module.geluErf, "geluErf"),
    geluErfBackward: unaryBackward(module.geluErfBackward, "geluErfBackward"),
    silu: unary(module.silu, "silu"),
    siluBackward: unaryBackward(module.siluBackward, "siluBackward"),
    exp: unary(module.exp, "exp"),
    tanh: unary(module.tanh, "tanh"),
    relu: unary(module.relu, "relu"),
    reluBackward: unaryBackward(module.reluBackward, "reluBackward"),

    select(cond, a, b, out) {
      checkSelect(cond, a, b, out);
      const [condAt, aAt, bAt] = copyIn([cond, a, b]);
      module.select(condAt, aAt, bAt, aAt, cond.length);
      copyOut(aAt, out);
    },

    softmaxRows(x, rows, cols, out) {
      checkSoftmaxRows(x, rows, cols, out);
      const [xAt] = copyIn([x]);
      module.softmaxRows(xAt, rows, cols, xAt);
      copyOut(xAt, out);
    },

    attentionSoftmax(x, batch, heads, queries, keys, divisor, window, padding, out) {
      checkAttentionSoftmax(x, batch, heads, queries, keys, divisor, window, padding, out);
      const [xAt, paddingAt] = copyIn([x, padding]);
      module.attentionSoftmax(xAt, batch, heads, queries, keys, divisor, window, paddingAt, xAt);
      copyOut(xAt, out);
    },

    softmaxRowsBackward(y, gradOut, rows, cols, gradIn) {
      checkSoftmaxRowsBackward(y, gradOut, rows, cols, gradIn);
      const [yAt, gradOutAt] = copyIn([y, gradOut]);
      module.softmaxRowsBackward(yAt, gradOutAt, rows, cols, gradOutAt);
      copyOut(gradOutAt, gradIn);
    },

    layerNormRows(x, weight, bias, eps, rows, cols, out, mean, rstd) {
      checkLayerNormRows(x, weight, bias, eps, rows, cols, out, mean, rstd);
      const [xAt, weightAt, biasAt, meanAt, rstdAt] = copyIn([x, weight, bias], [4 * rows, 4 * rows]);
      module.layerNormRows(xAt, weightAt, biasAt, eps, rows, cols, xAt, meanAt, rstdAt);
      copyOut(xAt, out);
      copyOut(meanAt, mean);
      copyOut(rstdAt, rstd);
    },

    layerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias) {
      checkLayerNormRowsBackward(x, weight, mean, rstd, gradOut, rows, cols, gradX, gradWeight, gradBias);
      const [xAt, weightAt, meanAt, rstdAt, gradOutAt, gradWeightAt, gradBiasAt, scratchAt] = copyIn(
        [x, weight, mean, rstd, gradOut, gradWeight, gradBias],
        [16 * cols],
      );
      module.layerNormRowsBackward(
        xAt,
        weightAt,
        meanAt,
        rstdAt,
        gradOutAt,
        rows,
        cols,
        gradOutAt,
        gradWeightAt,
        gradBiasAt,
        scratchAt,
      );
      copyOut(gradOutAt, gradX);
      copyOut(gradWeightAt, gradWeight);
      copyOut(gradBiasAt, gradBias);
    },

    rmsNormRows(x, weight, eps, rows, cols, out, rstd) {
      checkRmsNormRows(x, weight, eps, rows, cols, out, rstd);
      const [xAt, weightAt, rstdAt] = copyIn([x, weight], [4 * rows]);
      module.rmsNormRows(xAt, weightAt, eps, rows, cols, xAt, rstdAt);
      copyOut(xAt, out);
      copyOut(rstdAt, rstd);
    },

    rmsNormRowsBackward(x, weight, rstd, gradOut, rows, cols, gradX, gradWeight) {
      checkRmsNormRowsBackward(x, weight, rstd, gradOut, rows, cols, gradX, gradWeight);
      const [xAt, weightAt, rstdAt, gradOutAt, gradWeightAt, scratchAt] = copyIn(
        [x, weight, rstd, gradOut, gradWeight],
        [8 * cols],
      );
      module.rmsNormRowsBackward(xAt, weightAt, rstdAt, gradOutAt, rows, cols, gradOutAt, gradWeightAt, scratchAt);
      copyOut(gradOutAt, gradX);
      copyOut(gradWeightAt, gradWeight);
    },
  };
}

/** `module` instantiated on `memory` when it is the threaded build (it imports its memory), else on its own. */
export function instantiateKernelModule(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory | undefined,
): Record<string, unknown> {
  const importsMemory = WebAssembly.Module.imports(module).some((entry) => entry.kind === "memory");
  if (importsMemory && memory === undefined) {
    throw new Error("the threaded WebAssembly kernels need their shared memory (threadedWasmMemory)");
  }
  const env = importsMemory ? { pow: powC, memory } : { pow: powC };
  const exports = new WebAssembly.Instance(module, { env } as WebAssembly.Imports).exports as Record<string, unknown>;
  return importsMemory ? { ...exports, memory } : exports;
}

/**
 * The WebAssembly kernels over the module `bytes` (compiled and instantiated synchronously: fine in
 * Node and in workers, and on a browser's main thread for a module this small); for the threaded
 * build, on `memory`.
 */
export function createWasmKernels(bytes: Uint8Array, memory?: WebAssembly.Memory): Kernels {
  const exports = instantiateKernelModule(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), memory);
  const missing = [...KERNEL_FUNCTION_NAMES, "heapBase"].filter((name) => typeof exports[name] !== "function");
  if (!(exports.memory instanceof WebAssembly.Memory)) missing.push("memory");
  if (missing.length > 0) {
    throw new Error(
      `the WebAssembly kernel module lacks ${missing.join(", ")}: it is out of date; ` +
        "run npm run build:wasm to rebuild it",
    );
  }
  return kernelsOver(exports as unknown as ModuleExports);
}

/** The WebAssembly kernels of platform `p`, or null and why not. */
export function loadWasmKernels(p: Platform): { kernels: Kernels | null; error: Error | null } {
  try {
    return { kernels: createWasmKernels(p.wasmKernelBytes(), p.wasmKernelMemory?.()), error: null };
  } catch (error) {
    return { kernels: null, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

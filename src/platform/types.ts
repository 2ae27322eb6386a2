/**
 * What the core (tensor nn models intervene sweeps viz) needs from the machine it runs on, and
 * nothing more: the settings of the environment, the native kernel addon and the WebAssembly
 * kernels, files shipped inside the package, and a way to raise a warning. Node provides all of it (node.ts); a browser
 * provides what it can (portable.ts). File and Hub I/O are not here: they are the io layer's.
 */
export interface Platform {
  /** A short name for messages, e.g. "node" or "portable". */
  readonly name: string;
  /** A setting of the environment (Node: the environment variable), undefined when unset. */
  env(name: string): string | undefined;
  /**
   * Loads the native kernel addon: its exports and where they came from. Throws an Error that
   * says why when there is none (not built, no OpenBLAS, not Node); the caller checks the exports.
   */
  loadNativeAddon(): { path: string; exports: Record<string, unknown> };
  /**
   * The bytes of the WebAssembly kernel module (build/wasm/tsvene.wasm), the middle tier between
   * the addon and the TypeScript kernels. Throws an Error that says why when there are none.
   */
  wasmKernelBytes(): Uint8Array;
  /**
   * The shared memory the threaded build of those kernels (build/wasm/tsvene-threads.wasm) runs on,
   * which its GEMM helpers in other workers share; undefined (or no method) for the plain build.
   */
  wasmKernelMemory?(): WebAssembly.Memory | undefined;
  /** A path inside the package (the folder holding tsvene's package.json), e.g. ("models", "default"). */
  packagePath(...segments: string[]): string;
  /** Raises a warning other than the console's (Node: process.emitWarning with this code). */
  emitWarning(message: string, code: string): void;
}

/**
 * The platform of a JavaScript runtime without Node (a browser, a worker): no environment
 * settings, no native addon (the TypeScript kernels run), package files addressed relative to
 * where the page serves the package, warnings on the console.
 */
import type { Platform } from "./types.js";

export const portablePlatform: Platform = {
  name: "portable",
  env: () => undefined,
  loadNativeAddon() {
    throw new Error("this platform has no native addon (it loads only in Node)");
  },
  packagePath: (...segments) => segments.join("/"),
  emitWarning: (message, code) => console.warn(`${code}: ${message}`),
};

/**
 * The seam between the core and the machine: the core (tensor nn models intervene sweeps viz)
 * asks `platform()` for environment settings, the native addon, package files and warnings, and
 * imports nothing from node: itself. The platform is the default one (default.ts: Node's; a
 * browser build aliases it to default-browser.ts) unless `setPlatform` installs another.
 *
 * The native addon is looked for once, when tensor/kernels is first evaluated, so a platform
 * meant to provide it must be installed before the core is imported (or be the default).
 */
import { defaultPlatform } from "./default.js";
import type { Platform } from "./types.js";

export type { Platform } from "./types.js";
export { createPortablePlatform, portablePlatform, type PortablePlatformOptions } from "./portable.js";

let installed: Platform | null = null;

/** The platform in use. */
export function platform(): Platform {
  return installed ?? defaultPlatform;
}

/** Installs `p` as the platform from now on; null goes back to the default one. */
export function setPlatform(p: Platform | null): void {
  installed = p;
}

/** The browser build's stand-in for default.ts: the portable platform (see default.ts). */
export { portablePlatform as defaultPlatform } from "./portable.js";

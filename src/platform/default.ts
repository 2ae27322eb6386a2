/**
 * The platform the core uses unless setPlatform installs another: Node's. A browser build
 * replaces this module with default-browser.ts (a bundler alias, or package.json's "browser"
 * field), so that nothing of node.ts, and nothing from node:, enters the bundle.
 */
export { nodePlatform as defaultPlatform } from "./node.js";

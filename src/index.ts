export * from "./tensor/index.js";
export * from "./io/index.js";
export * as nn from "./nn/index.js";
export * from "./models/index.js";
export * from "./intervene/index.js";
export * from "./causal/index.js";
export * from "./train/index.js";
export * from "./sweeps/index.js";
export * from "./viz/index.js";
export {
  createPortablePlatform,
  platform,
  portablePlatform,
  setPlatform,
  type Platform,
  type PortablePlatformOptions,
} from "./platform/index.js";

export { heatmapSvg, type HeatmapOptions } from "./heatmap.js";
export { traceReport, patchReport, collectReport, type ReportOptions } from "./report.js";
export type { Hue } from "./color-scale.js";

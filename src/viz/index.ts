export {
  heatmapSvg,
  gridSvg,
  labelledGrid,
  type HeatmapOptions,
  type GridSvgOptions,
  type LabelledGrid,
} from "./heatmap.js";
export { traceReport, patchReport, collectReport, type ReportOptions } from "./report.js";
export { gridReport, type GridReportOptions, type GridPanel } from "./grid-report.js";
export type { Hue } from "./color-scale.js";
export { toJson, gridJson, scoreGridJson, traceResultJson } from "./grid-json.js";
export {
  headGridHeading,
  headLabelledGrid,
  headsReport,
  headsResultJson,
  headsValueLabel,
  type HeadsRun,
} from "./heads.js";
export { differingPositions } from "./format.js";

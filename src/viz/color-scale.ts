/**
 * Colour scales for heat maps. Sequential: white at the smallest value to a hue at the largest
 * (ROME's Purples/Greens/Reds for block/MLP/attention). Diverging: blue below zero, white at zero,
 * red above, symmetric so that equal magnitudes get equal intensity on both sides. Centred: white
 * at a reference value (the corrupted or base run), the hue above it and blue below, equal
 * distances from it equally intense, so a cell's colour says how far it moves the metric.
 */

export type Hue = "purple" | "green" | "red";

/** The dark ends of matplotlib's Purples, Greens and Reds, which ROME's figures use. */
const HUE_ENDS: Record<Hue, string> = { purple: "#3f007d", green: "#00441b", red: "#67000d" };
const WHITE = "#ffffff";
const NEGATIVE = "#2166ac";
const POSITIVE = "#b2182b";
/** Cells whose value is NaN or infinite: outside any scale. */
const MISSING_COLOR = "#bdbdbd";

export interface ColorScale {
  kind: "sequential" | "diverging" | "centred";
  /** The values the scale's ends stand for. */
  min: number;
  max: number;
  /** The value drawn white on a centred scale (zero on a diverging one). */
  center?: number;
  color(value: number): string;
  /** Colour stops along the scale from min (offset 0) to max (offset 1), for a gradient legend. */
  stops: { offset: number; color: string }[];
}

/**
 * The scale for a set of values: diverging when they straddle zero (a signed effect, where zero
 * means "no change"), otherwise sequential over [min, max]. Non-finite values are ignored.
 */
export function colorScaleFor(
  values: ArrayLike<number>,
  hue: Hue = "purple",
  kind?: "sequential" | "diverging",
): ColorScale {
  const { min, max } = extentOf(values) ?? { min: 0, max: 0 };
  const chosen = kind ?? (min < 0 && max > 0 ? "diverging" : "sequential");
  return chosen === "diverging"
    ? divergingScale(Math.max(Math.abs(min), Math.abs(max)))
    : sequentialScale(min, max, hue);
}

/** The finite values' smallest and largest, or null when there are none. */
export function extentOf(values: ArrayLike<number>): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min > max ? null : { min, max };
}

/**
 * White at `center`, `hue` at center + m and blue at center − m, where m is the larger distance
 * from the centre to `low` or `high`; the scale's ends are `low` and `high` widened to the centre.
 */
export function centredScale(center: number, low: number, high: number, hue: Hue = "purple"): ColorScale {
  const min = Math.min(low, center);
  const max = Math.max(high, center);
  const magnitude = Math.max(max - center, center - min);
  const end = HUE_ENDS[hue];
  const color = (value: number) => {
    if (!Number.isFinite(value)) return MISSING_COLOR;
    const t = magnitude > 0 ? Math.max(-1, Math.min(1, (value - center) / magnitude)) : 0;
    return t < 0 ? mix(WHITE, NEGATIVE, -t) : mix(WHITE, end, t);
  };
  const middle = max > min ? (center - min) / (max - min) : 0;
  const stops = [{ offset: middle, color: WHITE }];
  if (middle > 0) stops.unshift({ offset: 0, color: color(min) });
  if (middle < 1) stops.push({ offset: 1, color: color(max) });
  return { kind: "centred", min, max, center, color, stops };
}

function sequentialScale(min: number, max: number, hue: Hue): ColorScale {
  const end = HUE_ENDS[hue];
  const range = max - min;
  return {
    kind: "sequential",
    min,
    max,
    color: (value) =>
      Number.isFinite(value) ? mix(WHITE, end, range > 0 ? clamp01((value - min) / range) : 0) : MISSING_COLOR,
    stops: [
      { offset: 0, color: WHITE },
      { offset: 1, color: end },
    ],
  };
}

/** Symmetric around zero: -magnitude is full blue, +magnitude full red. */
function divergingScale(magnitude: number): ColorScale {
  return {
    kind: "diverging",
    min: -magnitude,
    max: magnitude,
    center: 0,
    color: (value) => {
      if (!Number.isFinite(value)) return MISSING_COLOR;
      const t = magnitude > 0 ? Math.max(-1, Math.min(1, value / magnitude)) : 0;
      return t < 0 ? mix(WHITE, NEGATIVE, -t) : mix(WHITE, POSITIVE, t);
    },
    stops: [
      { offset: 0, color: NEGATIVE },
      { offset: 0.5, color: WHITE },
      { offset: 1, color: POSITIVE },
    ],
  };
}

/** Linear interpolation in sRGB, as an SVG gradient between the same stops would draw it. */
function mix(from: string, to: string, t: number): string {
  const a = parseHex(from);
  const b = parseHex(to);
  return `#${a
    .map((channel, i) =>
      Math.round(channel + (b[i] - channel) * t)
        .toString(16)
        .padStart(2, "0"),
    )
    .join("")}`;
}

function parseHex(color: string): number[] {
  return [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
}

function clamp01(t: number): number {
  return Math.max(0, Math.min(1, t));
}

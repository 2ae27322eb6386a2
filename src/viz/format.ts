/** Text for reports: markup escaping, visible token labels, and numbers short or exact. */

/** Characters XML 1.0 forbids even escaped; tokens can hold them (byte-level BPE has U+0000–U+001F). */
const FORBIDDEN_IN_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/** Escapes text for SVG/HTML text and quoted attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;")
    .replace(FORBIDDEN_IN_XML, "\uFFFD");
}

/** A token as a label: control characters (newline, tab, NUL…) spelt as escapes so they stay visible. */
export function displayToken(token: string): string {
  return token.replace(/[\u0000-\u001F\u007F]/g, (ch) => JSON.stringify(ch).slice(1, -1));
}

/** Positions whose tokens differ between two prompts (the ones a patching marks). */
export function differingPositions(a: readonly string[], b: readonly string[]): number[] {
  return a.flatMap((t, i) => (t !== b[i] ? [i] : []));
}

/** Cuts `text` to at most `maxChars` characters (code points, so no split surrogate pairs), ending in "…". */
export function truncate(text: string, maxChars: number): string {
  const chars = Array.from(text);
  return chars.length <= maxChars ? text : `${chars.slice(0, maxChars - 1).join("")}…`;
}

/**
 * A number as reports show it, on ticks, in tables and summaries alike: `digits` significant
 * digits, no trailing zeros. The exact value goes in a title, for hover.
 */
export function formatValue(value: number, digits = 4): string {
  if (!Number.isFinite(value)) return String(value);
  return String(Number(value.toPrecision(digits)));
}

/** A score as tables and summaries print it: three decimals, or three significant digits when tiny or huge. */
export function formatScore(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toFixed(3);
}

/**
 * The shortest decimal that reads back as the same float32: what a sweep computed, without the
 * float64 noise that printing the widened value would add (0.1f is "0.1", not "0.10000000149…").
 */
export function exactFloat32(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const f = Math.fround(value);
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return String(candidate);
  }
  return String(Number(f.toPrecision(9)));
}

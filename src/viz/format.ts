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

/**
 * Options objects read strictly. From JavaScript nothing stops a typo (`unitLocation`) or a
 * pyvene habit (`{"sources->base": 1}` where the options go) from being silently dropped, which
 * would run an experiment nobody asked for. So every public options object goes through
 * `readOptions`: unknown keys are errors with a "did you mean" suggestion, and pyvene's
 * snake_case spelling of every camelCase name is accepted (`unit_locations` = `unitLocations`).
 */

/** pyvene's spelling of a camelCase name: `unitLocations` → `unit_locations`. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The error thrown for a bad option: the message names the field and what was expected. */
export class OptionError extends TypeError {
  override readonly name = "OptionError";
}

/** Advice for an unknown key that is a known mistake (e.g. a unit-locations key passed as an option). */
export type OptionHint = (key: string) => string | undefined;

/**
 * A copy of `input` with every key in camelCase, checked against `names`.
 * Null or undefined input reads as no options.
 */
export function readOptions<T extends object>(
  input: unknown,
  names: readonly (keyof T & string)[],
  where: string,
  hint: OptionHint = () => undefined,
): Partial<T> {
  if (input === undefined || input === null) return {};
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new OptionError(`${where} must be an options object {${names.join(", ")}}, got ${describe(input)}`);
  }
  const known = new Map<string, string>();
  for (const name of names) {
    known.set(name, name);
    known.set(snakeCase(name), name);
  }
  const out: Record<string, unknown> = {};
  const seenAs = new Map<string, string>();
  for (const key of Object.keys(input)) {
    const name = known.get(key);
    if (name === undefined) throw new OptionError(unknownKeyMessage(key, names, where, hint));
    const earlier = seenAs.get(name);
    if (earlier !== undefined)
      throw new OptionError(`${where}: "${earlier}" and "${key}" name the same option; give one`);
    seenAs.set(name, key);
    out[name] = (input as Record<string, unknown>)[key];
  }
  return out as Partial<T>;
}

function unknownKeyMessage(key: string, names: readonly string[], where: string, hint: OptionHint): string {
  const advice = hint(key);
  if (advice !== undefined) return `${where}: unknown option "${key}": ${advice}`;
  const suggestion = closest(key, names);
  const didYouMean = suggestion === null ? "" : ` (did you mean "${suggestion}"?)`;
  return (
    `${where}: unknown option "${key}"${didYouMean}; ` +
    `expected one of ${names.join(", ")} (or their snake_case forms)`
  );
}

/**
 * Checks that `input` has no key outside `names`, without reading snake_case: for objects whose
 * keys are read by several hands (a base class and its subclasses), where a converted copy could
 * not reach them all. A snake_case key gets the camelCase name as its suggestion.
 */
export function exactKeys(input: unknown, names: readonly string[], where: string): void {
  if (input === undefined || input === null) return;
  if (typeof input !== "object" || Array.isArray(input))
    throw new OptionError(`${where} must be an options object {${names.join(", ")}}, got ${describe(input)}`);
  for (const key of Object.keys(input)) {
    if (names.includes(key)) continue;
    const suggestion = closest(key, names);
    throw new OptionError(
      `${where}: unknown option "${key}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; ` +
        `expected one of ${names.join(", ")}`,
    );
  }
}

/** The known name nearest to `key` by edit distance, ignoring case and underscores; null when none is close. */
export function closest(key: string, names: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replaceAll("_", "");
  const k = norm(key);
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of names) {
    const d = editDistance(k, norm(name));
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return bestDistance <= Math.max(2, Math.floor(k.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** A value as an error message shows it: JSON where that is short, else its kind. */
export function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return `a function (${value.name || "anonymous"})`;
  if (typeof value === "bigint") return `${value}n`;
  const shape = (value as { shape?: unknown } | null)?.shape;
  if (typeof value === "object" && Array.isArray(shape))
    return `a ${value!.constructor.name} of shape [${shape.join(", ")}]`;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined && json.length <= 80) return json;
  } catch {
    // circular or otherwise unprintable: fall through to the kind
  }
  if (Array.isArray(value)) return `a list of ${value.length}`;
  return typeof value === "object" && value !== null
    ? `an object (${value.constructor?.name ?? "no prototype"})`
    : String(value);
}

/** Reading HF `config.json` fields with errors that name the field and the expected form. */

export type HFConfig = Readonly<Record<string, unknown>>;

function describe(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value);
}

/** A required number field (or the first of several aliases present), or `fallback` when given. */
export function configNumber(config: HFConfig, keys: string | readonly string[], fallback?: number): number {
  const names = typeof keys === "string" ? [keys] : keys;
  for (const key of names) {
    const value = config[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new TypeError(`config.json: "${key}" must be a number, got ${describe(value)}`);
    }
    return value;
  }
  if (fallback !== undefined) return fallback;
  throw new TypeError(
    `config.json: "${names.join('" or "')}" is required (a number), got ${describe(config[names[0]])}`,
  );
}

/** A positive integer field. */
export function configInt(config: HFConfig, keys: string | readonly string[], fallback?: number): number {
  const value = configNumber(config, keys, fallback);
  if (!Number.isInteger(value) || value <= 0) {
    const names = typeof keys === "string" ? keys : keys.join('" or "');
    throw new TypeError(`config.json: "${names}" must be a positive integer, got ${value}`);
  }
  return value;
}

/** A number field that may be absent or null (e.g. `sliding_window`, soft-capping), as undefined. */
export function configOptionalNumber(config: HFConfig, key: string): number | undefined {
  const value = config[key];
  if (value === undefined || value === null) return undefined;
  return configNumber(config, key);
}

export function configBool(config: HFConfig, key: string, fallback: boolean): boolean {
  const value = config[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean")
    throw new TypeError(`config.json: "${key}" must be true or false, got ${describe(value)}`);
  return value;
}

export function configString(config: HFConfig, keys: string | readonly string[], fallback?: string): string {
  const names = typeof keys === "string" ? [keys] : keys;
  for (const key of names) {
    const value = config[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string")
      throw new TypeError(`config.json: "${key}" must be a string, got ${describe(value)}`);
    return value;
  }
  if (fallback !== undefined) return fallback;
  throw new TypeError(`config.json: "${names.join('" or "')}" is required (a string)`);
}

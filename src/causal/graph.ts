/**
 * The structure of a causal model: checks a definition and derives children, inputs, outputs,
 * timesteps and the run order. Generated timesteps follow pyvene: inputs are at 0, every other
 * variable at its longest-path depth from the inputs, and outputs are moved to the last step (so
 * a layout puts them on one row). An isolated variable stays an input at step 0.
 */

/** The parts of a definition that fix the structure (values and functions are checked for presence). */
export interface StructureDefinition {
  readonly variables: readonly string[];
  readonly values: Readonly<Record<string, unknown>>;
  readonly parents: Readonly<Record<string, readonly string[]>>;
  readonly functions: Readonly<Record<string, unknown>>;
  readonly timesteps?: Readonly<Record<string, number>>;
}

export interface Structure {
  /** Variables in run order: by timestep, alphabetical within one. */
  readonly variables: readonly string[];
  /** Variables without parents, alphabetical. */
  readonly inputs: readonly string[];
  /** Variables that are nobody's parent, alphabetical. */
  readonly outputs: readonly string[];
  readonly children: Readonly<Record<string, readonly string[]>>;
  readonly timesteps: Readonly<Record<string, number>>;
}

export function analyseStructure(definition: StructureDefinition): Structure {
  const names = checkVariables(definition.variables);
  const known = new Set(names);
  checkKeys(definition.values, "values", known);
  checkKeys(definition.parents, "parents", known);
  checkKeys(definition.functions, "functions", known);
  if (definition.timesteps !== undefined) checkKeys(definition.timesteps, "timesteps", known);
  for (const v of names) {
    const values = definition.values[v];
    if (!Array.isArray(values) || values.length === 0)
      throw new TypeError(`CausalModel: values["${v}"] must be a non-empty array of the values "${v}" can take`);
    if (typeof definition.functions[v] !== "function")
      throw new TypeError(
        `CausalModel: functions["${v}"] must be a function of the values of its parents ` +
          "(no arguments for an input: it gives the default)",
      );
    const parents = definition.parents[v];
    if (!Array.isArray(parents))
      throw new TypeError(`CausalModel: parents["${v}"] must be an array of variable names ([] for an input)`);
    for (const p of parents) {
      if (!known.has(p))
        throw new TypeError(
          `CausalModel: parents["${v}"] names unknown variable ${JSON.stringify(p)} (variables: ${names.join(", ")})`,
        );
    }
  }
  const children: Record<string, string[]> = Object.fromEntries(names.map((v) => [v, []]));
  for (const v of names) for (const p of new Set(definition.parents[v])) children[p].push(v);
  checkAcyclic(names, definition.parents);

  const sorted = [...names].sort();
  const inputs = sorted.filter((v) => definition.parents[v].length === 0);
  const outputs = sorted.filter((v) => children[v].length === 0);
  const timesteps =
    definition.timesteps === undefined
      ? generateTimesteps(names, definition.parents, outputs)
      : checkTimesteps(names, definition.parents, definition.timesteps);
  const variables = [...sorted].sort((a, b) => timesteps[a] - timesteps[b]);
  return { variables, inputs, outputs, children, timesteps };
}

function checkVariables(variables: readonly string[]): string[] {
  if (!Array.isArray(variables) || variables.length === 0)
    throw new TypeError("CausalModel: variables must be a non-empty array of variable names");
  const seen = new Set<string>();
  for (const v of variables) {
    if (typeof v !== "string" || v === "" || v === "__proto__")
      throw new TypeError(
        `CausalModel: variables must be non-empty strings other than "__proto__", got ${JSON.stringify(v)}`,
      );
    if (seen.has(v)) throw new TypeError(`CausalModel: variable "${v}" is listed twice in variables`);
    seen.add(v);
  }
  return [...variables];
}

function checkKeys(record: Readonly<Record<string, unknown>>, field: string, known: ReadonlySet<string>): void {
  if (record === null || typeof record !== "object")
    throw new TypeError(`CausalModel: ${field} must be an object keyed by variable name`);
  for (const key of Object.keys(record)) {
    if (!known.has(key))
      throw new TypeError(`CausalModel: ${field} has an entry for "${key}", which is not in variables`);
  }
  for (const v of known) {
    if (!Object.hasOwn(record, v)) throw new TypeError(`CausalModel: ${field} has no entry for variable "${v}"`);
  }
}

function checkAcyclic(names: readonly string[], parents: Readonly<Record<string, readonly string[]>>): void {
  const state = new Map<string, "visiting" | "done">();
  const trail: string[] = [];
  const visit = (v: string): void => {
    if (state.get(v) === "done") return;
    if (state.get(v) === "visiting") {
      const cycle = [...trail.slice(trail.indexOf(v)), v].reverse();
      throw new TypeError(`CausalModel: the parents form a cycle through variable "${v}": ${cycle.join(" → ")}`);
    }
    state.set(v, "visiting");
    trail.push(v);
    for (const p of parents[v]) visit(p);
    trail.pop();
    state.set(v, "done");
  };
  for (const v of names) visit(v);
}

function generateTimesteps(
  names: readonly string[],
  parents: Readonly<Record<string, readonly string[]>>,
  outputs: readonly string[],
): Record<string, number> {
  const timesteps: Record<string, number> = {};
  const depth = (v: string): number => {
    timesteps[v] ??= parents[v].length === 0 ? 0 : 1 + Math.max(...parents[v].map(depth));
    return timesteps[v];
  };
  const last = Math.max(...names.map(depth));
  for (const v of outputs) if (parents[v].length > 0) timesteps[v] = last;
  return timesteps;
}

function checkTimesteps(
  names: readonly string[],
  parents: Readonly<Record<string, readonly string[]>>,
  given: Readonly<Record<string, number>>,
): Record<string, number> {
  for (const v of names) {
    if (typeof given[v] !== "number" || !Number.isFinite(given[v]))
      throw new TypeError(`CausalModel: timesteps["${v}"] must be a finite number, got ${JSON.stringify(given[v])}`);
    for (const p of parents[v]) {
      if (!(given[p] < given[v]))
        throw new RangeError(
          `CausalModel: timesteps["${v}"] = ${given[v]} must be later than ` +
            `its parent's timesteps["${p}"] = ${given[p]}`,
        );
    }
  }
  return { ...given };
}

/**
 * The page's worker: loads models and runs tsvene's sweeps off the page's thread, so the page
 * stays responsive. It answers each request of protocol.ts with progress, then a result or an
 * error whose message is tsvene's own.
 */
import * as tv from "../src/index.js";
import type {
  ModelInfo,
  ModelSource,
  Panel,
  SweepAnswer,
  TraceRequest,
  WorkerMessage,
  WorkRequest,
} from "./protocol.js";

interface Loaded {
  model: tv.PretrainedModel;
  tokenizer: tv.Tokenizer;
  name: string;
}

/** ROME's three panels, traced by component "all" (as `tsvene trace --component all`). */
const ROME_COMPONENTS = ["block_output", "mlp_output", "attention_output"];
/** The embedded model, served beside the page (build-web copies models/default there). */
const DEFAULT_MODEL = new URL("models/default/", self.location.href);

let loaded: Loaded | null = null;

/**
 * The WebAssembly kernels, when the site has them (build-web copies build/wasm/tsvene.wasm beside
 * the page), installed before any tensor work: the kernels are chosen on first use. Without them
 * the TypeScript kernels run.
 */
const platformReady = fetch(new URL("tsvene.wasm", self.location.href)).then(
  async (response) => {
    if (!response.ok) return;
    const wasmKernelBytes = new Uint8Array(await response.arrayBuffer());
    tv.setPlatform(tv.createPortablePlatform({ wasmKernelBytes }));
  },
  () => undefined,
);

self.addEventListener("message", (event: MessageEvent<{ id: number; request: WorkRequest }>) => {
  const { id, request } = event.data;
  const post = (message: WorkerMessage) => self.postMessage(message);
  handle(request, (done, total, label) => post({ id, type: "progress", done, total, label })).then(
    (answer) => post(answer.type === "loaded" ? { id, ...answer } : { id, type: "result", answer: answer.answer }),
    (error: unknown) => post({ id, type: "error", message: error instanceof Error ? error.message : String(error) }),
  );
});

type Progress = (done: number, total: number, label: string) => void;
type Answer = { type: "loaded"; info: ModelInfo } | { type: "result"; answer: SweepAnswer };

async function handle(request: WorkRequest, progress: Progress): Promise<Answer> {
  await platformReady;
  if (request.kind === "load") return { type: "loaded", info: await load(request.source) };
  if (loaded === null) throw new Error("no model is loaded yet");
  if (request.kind === "trace") return { type: "result", answer: trace(loaded, request, progress) };
  if (request.kind === "patch") return { type: "result", answer: patch(loaded, request, progress) };
  return { type: "result", answer: lens(loaded, request.prompt) };
}

async function load(source: ModelSource): Promise<ModelInfo> {
  const files =
    source.kind === "default"
      ? tv.filesFromUrl(DEFAULT_MODEL)
      : source.kind === "files"
        ? tv.filesFromBlobs(source.files)
        : tv.filesFromHub(source.id);
  const pretrained = await tv.loadPretrainedFrom(files);
  if (pretrained.tokenizer === null)
    throw new Error(`${files.where}: no tokenizer (tokenizer.json, or vocab.json + merges.txt); the page reads text`);
  const name = source.kind === "default" ? "default" : source.kind === "hub" ? source.id : files.where;
  loaded = { model: pretrained.model, tokenizer: pretrained.tokenizer, name };
  const factsBytes = await files.read("facts.json");
  const facts = factsBytes && tv.parseFacts(JSON.parse(new TextDecoder().decode(factsBytes)), "facts.json");
  const { model } = pretrained;
  return {
    name,
    family: model.family,
    layers: model.numLayers,
    components: Object.keys(model.sites),
    demo: facts ? { prompt: facts.demo.prompt, subject: facts.demo.subject } : null,
  };
}

function promptIds({ tokenizer }: Loaded, text: string, label: string): number[] {
  const ids = tokenizer.encode(text);
  if (ids.length === 0)
    throw new Error(`${label} must be text that has at least one token, got ${JSON.stringify(text)}`);
  return ids;
}

function tokenLabels({ tokenizer }: Loaded, ids: readonly number[]): string[] {
  return ids.map((id) => tokenizer.decode([id]));
}

function trace(run: Loaded, request: TraceRequest, progress: Progress): SweepAnswer {
  const { prompt, subject } = request;
  const ids = promptIds(run, prompt, "prompt");
  const tokens = tokenLabels(run, ids);
  const corruptedPositions = tv.subjectPositions(run.tokenizer, { text: prompt, ids }, subject, "subject");
  const components = request.component === "all" ? ROME_COMPONENTS : [request.component];
  const results = components.map((component) => {
    const result = tv.causalTrace(run.model, {
      inputIds: tv.intTensor([ids]),
      tokens,
      corruptedPositions,
      component,
      window: request.window,
      seed: request.seed,
      samples: request.samples,
      ...(request.noise !== null && { noiseStd: request.noise }),
      onProgress: (done, total) => progress(done, total, `trace ${component}`),
    });
    return { ...result, targetLabel: run.tokenizer.decode([result.target]) };
  });
  const json = results.map((r) => tv.traceResultJson(r, { model: run.name, prompt, subject }));
  const panels: Panel[] = results.map((r, i) => ({
    heading: `Restoring ${r.component} (window ${r.window})`,
    cols: r.grid.cols,
    svg: tv.heatmapSvg(r.grid, {
      tokens: r.tokens,
      markedPositions: r.corruptedPositions,
      valueLabel: `p(${r.targetLabel})`,
      subtitle: `${run.name}: σ ${r.noiseStd?.toPrecision(3)}, seed ${r.seed}, mean of ${r.samples}`,
      idPrefix: `trace-${i}`,
    }),
  }));
  const first = results[0];
  return {
    summary:
      `p(${JSON.stringify(first.targetLabel)}) clean ${first.clean.toFixed(4)}, ` +
      `corrupted ${first.corrupted.toFixed(4)}; corrupted tokens: ${corruptedPositions.map((p) => tokens[p]).join("")}`,
    json: json.length === 1 ? json[0] : json,
    reportHtml: tv.traceReport(results, { model: run.name }),
    panels,
  };
}

function patch(run: Loaded, request: { base: string; source: string; component: string }, progress: Progress) {
  const baseIds = promptIds(run, request.base, "base prompt");
  const sourceIds = promptIds(run, request.source, "source prompt");
  if (baseIds.length !== sourceIds.length) {
    throw new Error(
      `the source prompt must have as many tokens as the base: the base has ${baseIds.length}, ` +
        `the source ${sourceIds.length} (patching pairs positions one to one)`,
    );
  }
  const baseTokens = tokenLabels(run, baseIds);
  const sourceTokens = tokenLabels(run, sourceIds);
  const raw = tv.activationPatching(run.model, {
    base: tv.intTensor([baseIds]),
    source: tv.intTensor([sourceIds]),
    baseTokens,
    sourceTokens,
    component: request.component,
    onProgress: (done, total) => progress(done, total, `patch ${request.component}`),
  });
  const result = { ...raw, targetLabel: run.tokenizer.decode([raw.target]) };
  const differing = baseTokens.flatMap((t, i) => (t !== sourceTokens[i] ? [i] : []));
  const { kind, grid, ...rest } = result;
  const json = {
    kind,
    model: run.name,
    basePrompt: request.base,
    sourcePrompt: request.source,
    ...rest,
    differingPositions: differing,
    grid: tv.scoreGridJson(grid, baseTokens),
  };
  const svg = tv.heatmapSvg(grid, {
    tokens: baseTokens,
    markedPositions: differing,
    valueLabel: `p(${result.targetLabel})`,
    idPrefix: "patch",
  });
  return {
    summary: `p(${JSON.stringify(result.targetLabel)}) base ${result.base.toFixed(4)}, source ${result.source.toFixed(4)}`,
    json,
    reportHtml: tv.patchReport(result, { model: run.name }),
    panels: [{ heading: `Patching ${request.component} from the source run`, svg, cols: grid.cols }],
  };
}

function lens(run: Loaded, prompt: string): SweepAnswer {
  const ids = promptIds(run, prompt, "prompt");
  const tokens = tokenLabels(run, ids);
  const result = tv.logitLens(run.model, { inputIds: tv.intTensor([ids]), tokens });
  const targetLabel = run.tokenizer.decode([result.target]);
  const grid = { ...tv.labelledGrid(result.targetProbability, tokens), rowLabels: lensRows(result) };
  const { k, ids: topIds, probabilities } = result.top;
  const cellTopTokens = Array.from({ length: grid.values.length }, (_, cell) =>
    Array.from({ length: k }, (_, i) => ({
      token: run.tokenizer.decode([topIds[cell * k + i]]),
      probability: probabilities[cell * k + i],
    })),
  );
  const valueLabel = `p(${targetLabel})`;
  const svg = tv.gridSvg(grid, { valueLabel, idPrefix: "lens" });
  return {
    summary: `logit lens: probability of ${JSON.stringify(targetLabel)} read from each layer's residual stream`,
    json: { kind: result.kind, model: run.name, prompt, target: result.target, targetLabel, ...tv.gridJson(grid) },
    reportHtml: tv.gridReport({ title: "Logit lens", tokens, panels: [{ grid, valueLabel, heading: "Logit lens" }] }),
    panels: [{ heading: "Logit lens", svg, cols: tokens.length, cellTopTokens }],
  };
}

/** Row labels of the lens: "embed" for the embeddings (layer −1), then the layers. */
function lensRows(result: tv.LensResult): string[] {
  return result.targetProbability.layers.map((l) => (l < 0 ? "embed" : String(l)));
}

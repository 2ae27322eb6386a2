/**
 * The page's worker: loads models and runs tsvene's sweeps (sweeps.ts) off the page's thread, so
 * the page stays responsive. It answers each request of protocol.ts with progress, then a result
 * or an error whose message is tsvene's own.
 */
import * as tv from "../src/index.js";
import { startKernels } from "./kernel-threads.js";
import type {
  CellAnswer,
  Engine,
  ModelInfo,
  ModelSource,
  SweepAnswer,
  WorkerMessage,
  WorkRequest,
} from "./protocol.js";
import { cell, heads, lens, type Loaded, patch, type Progress, trace } from "./sweeps.js";

/** The embedded model, served beside the page (build-web copies models/default there). */
const DEFAULT_MODEL = new URL("models/default/", self.location.href);
const FACTS_FILE = "facts.json";

let loaded: Loaded | null = null;

/**
 * The kernels (kernel-threads.ts: the WebAssembly kernels when the site has them, on more than one
 * thread where the page is cross-origin isolated), installed before any tensor work: the kernels
 * are chosen on first use. Without them the TypeScript kernels run.
 */
const engineReady: Promise<Engine> = startKernels(new URL("./", self.location.href)).then(({ platform, threads }) => {
  if (platform) tv.setPlatform(platform);
  const kernels = tv.kernels().name;
  return { kernels, threads: kernels === "wasm" ? threads : 1 };
});

self.addEventListener("message", (event: MessageEvent<{ id: number; request: WorkRequest }>) => {
  const { id, request } = event.data;
  const post = (message: WorkerMessage) => self.postMessage(message);
  handle(request, (done, total, label) => post({ id, type: "progress", done, total, label })).then(
    (answer) => post({ id, ...answer }),
    (error: unknown) => post({ id, type: "error", message: error instanceof Error ? error.message : String(error) }),
  );
});

type Answer =
  | { type: "loaded"; info: ModelInfo; engine: Engine }
  | { type: "result"; answer: SweepAnswer }
  | { type: "cell"; cell: CellAnswer };

async function handle(request: WorkRequest, progress: Progress): Promise<Answer> {
  const engine = await engineReady;
  if (request.kind === "load") return { type: "loaded", info: await load(request.source), engine };
  if (loaded === null) throw new Error("no model is loaded yet");
  if (request.kind === "cell") return { type: "cell", cell: cell(loaded, request) };
  if (request.kind === "trace") return { type: "result", answer: trace(loaded, request, progress) };
  if (request.kind === "patch") return { type: "result", answer: patch(loaded, request, progress) };
  if (request.kind === "heads") return { type: "result", answer: heads(loaded, request, progress) };
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
  const factsBytes = await files.read(FACTS_FILE);
  const facts = factsBytes && tv.parseFacts(JSON.parse(new TextDecoder().decode(factsBytes)), FACTS_FILE);
  // Named as the CLI names a folder's facts file in its unknown-word error: where to read it.
  const factsFile = !facts ? null : source.kind === "default" ? new URL(FACTS_FILE, DEFAULT_MODEL).href : FACTS_FILE;
  const { model, tokenizer } = pretrained;
  loaded = { model, tokenizer, name, factsFile };
  const components = Object.keys(model.sites);
  return {
    name,
    family: model.family,
    layers: model.numLayers,
    components,
    headComponents: components.filter((c) => model.site(c, 0).heads),
    demo: facts ? { prompt: facts.demo.prompt, subject: facts.demo.subject } : null,
  };
}

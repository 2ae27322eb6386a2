/**
 * The page: reads the form, sends requests to the worker (worker.ts runs tsvene), draws what
 * comes back: a progress bar, the heat maps (hover a cell for its value, click it for that run's
 * top tokens), and downloads of the JSON and the HTML report.
 */
import type {
  Engine,
  ModelInfo,
  ModelSource,
  Panel,
  SweepAnswer,
  TopToken,
  WorkerMessage,
  WorkRequest,
} from "./protocol.js";

type Kind = "trace" | "patch" | "lens" | "heads";

const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
let nextId = 0;
let kind: Kind = "trace";
/** The result shown, and the experiment it came from (the downloads' file names). */
let answer: { kind: Kind; result: SweepAnswer } | null = null;

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

const value = (id: string) => element<HTMLInputElement>(id).value;
const progress = element<HTMLProgressElement>("progress");

/** Sends one request; resolves with its answer, drawing its progress meanwhile. */
function ask(request: WorkRequest): Promise<WorkerMessage> {
  const id = nextId++;
  element("error").textContent = "";
  progress.hidden = false;
  progress.removeAttribute("value");
  setBusy(true);
  return new Promise((resolve) => {
    const listen = (event: MessageEvent<WorkerMessage>) => {
      const message = event.data;
      if (message.id !== id) return;
      if (message.type === "progress") {
        progress.max = message.total;
        progress.value = message.done;
        element("status").textContent = `${message.label}: ${message.done} of ${message.total}`;
        return;
      }
      worker.removeEventListener("message", listen);
      progress.hidden = true;
      setBusy(false);
      element("status").textContent = "";
      if (message.type === "error") element("error").textContent = message.message;
      resolve(message);
    };
    worker.addEventListener("message", listen);
    worker.postMessage({ id, request });
  });
}

function setBusy(busy: boolean): void {
  document.body.dataset.busy = String(busy);
  for (const id of ["run", "load-hub"]) element<HTMLButtonElement>(id).disabled = busy;
}

async function loadModel(source: ModelSource): Promise<void> {
  element("model-name").textContent = "loading…";
  const message = await ask({ kind: "load", source });
  if (message.type !== "loaded") {
    element("model-name").textContent = "(none)";
    return;
  }
  showModel(message.info);
  showEngine(message.engine);
}

function showEngine(engine: Engine): void {
  const kernels = engine.kernels === "wasm" ? "the WebAssembly kernels" : `the ${engine.kernels} kernels`;
  const threads = engine.threads === 1 ? "one thread" : `${engine.threads} threads`;
  element("engine").textContent = `Computed here by ${kernels} on ${threads}.`;
  document.body.dataset.kernelThreads = String(engine.threads);
}

function showModel(info: ModelInfo): void {
  // The results shown were computed on the previous model; a clicked cell would rerun on this one.
  answer = null;
  element("results").hidden = true;
  element("model-name").textContent = info.name;
  element("model-about").textContent = `(${info.family}, ${info.layers} layers)`;
  const select = element<HTMLSelectElement>("component");
  const perPosition = info.components.filter((c) => !c.startsWith("head_") && !c.includes("attention_weight"));
  select.replaceChildren(
    ...["block_output", "all", ...perPosition.filter((c) => c !== "block_output")].map((c) => new Option(c, c)),
  );
  const heads = [...info.headComponents].sort((a, b) => rankHeads(a) - rankHeads(b));
  element<HTMLSelectElement>("head-component").replaceChildren(...heads.map((c) => new Option(c, c)));
  if (info.demo) {
    element<HTMLInputElement>("prompt").value = info.demo.prompt;
    element<HTMLInputElement>("subject").value = info.demo.subject;
  }
  document.body.dataset.model = info.name;
}

/** `tsvene heads`'s default component first. */
function rankHeads(component: string): number {
  return component === "head_attention_value_output" ? 0 : 1;
}

function request(): WorkRequest {
  const component = value("component");
  if (kind === "lens") return { kind, prompt: value("prompt") };
  if (kind === "patch") return { kind, base: value("base"), source: value("source"), component };
  if (kind === "heads") {
    const positions = value("head-positions") === "each" ? "each" : "all";
    return { kind, base: value("base"), source: value("source"), component: value("head-component"), positions };
  }
  const noise = value("noise");
  return {
    kind,
    prompt: value("prompt"),
    subject: value("subject"),
    component,
    samples: Number(value("samples")),
    seed: Number(value("seed")),
    window: Number(value("window")),
    noise: noise === "" ? null : Number(noise),
  };
}

async function run(): Promise<void> {
  const asked = kind;
  const message = await ask(request());
  if (message.type !== "result") return;
  answer = { kind: asked, result: message.answer };
  element("summary").textContent = message.answer.summary;
  element("panels").replaceChildren(...message.answer.panels.map(drawPanel));
  element("cell").textContent = "";
  element("results").hidden = false;
  document.body.dataset.done = String(nextId);
}

function drawPanel(panel: Panel): HTMLElement {
  const section = document.createElement("section");
  section.className = "panel";
  const heading = document.createElement("h2");
  heading.textContent = panel.heading;
  // The SVG is tsvene's own markup (viz/heatmap.ts escapes every label and value).
  const map = document.createElement("div");
  map.innerHTML = panel.svg;
  map.addEventListener("click", (event) => {
    const cell = (event.target as Element).closest("rect.cell");
    if (cell) void showCell(panel, cell);
  });
  section.append(heading, map);
  return section;
}

/**
 * A clicked cell: its value (the cell's title), and its run's top tokens: listed by the sweep (the
 * logit lens), or recomputed by the worker (a trace's or a patching's cell).
 */
async function showCell(panel: Panel, cell: Element): Promise<void> {
  const row = Number(cell.getAttribute("data-row"));
  const col = Number(cell.getAttribute("data-col"));
  const title = cell.querySelector("title")?.textContent ?? "";
  const listed = panel.cellTopTokens?.[row * panel.cols + col];
  for (const marked of document.querySelectorAll("#panels rect.cell.clicked")) marked.classList.remove("clicked");
  cell.classList.add("clicked");
  const output = element("cell");
  if (listed || !panel.cellRun) {
    output.textContent = [title, ...topLines(listed ?? [])].join("\n");
    return;
  }
  output.textContent = `${title}\ncomputing this cell's run…`;
  const message = await ask({ kind: "cell", of: panel.cellRun, layer: row, position: col });
  output.textContent =
    message.type === "cell" ? [title, message.cell.about, ...topLines(message.cell.top)].join("\n") : title;
  document.body.dataset.cell = String(nextId);
}

function topLines(top: readonly TopToken[]): string[] {
  return top.map((t) => `${JSON.stringify(t.token)}  ${t.probability.toPrecision(6)}`);
}

function download(name: string, type: string, text: string): void {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

function selectKind(chosen: Kind): void {
  kind = chosen;
  for (const button of document.querySelectorAll<HTMLButtonElement>(".tabs button"))
    button.setAttribute("aria-pressed", String(button.dataset.kind === chosen));
  for (const row of document.querySelectorAll<HTMLElement>("[data-for]"))
    row.hidden = !(row.dataset.for ?? "").split(" ").includes(chosen);
}

function loadDropped(files: FileList | null): void {
  if (files !== null && files.length > 0) void loadModel({ kind: "files", files: [...files] });
}

for (const button of document.querySelectorAll<HTMLButtonElement>(".tabs button"))
  button.addEventListener("click", () => selectKind(button.dataset.kind as Kind));
element("run").addEventListener("click", () => void run());
element("load-hub").addEventListener("click", () => void loadModel({ kind: "hub", id: value("hub-id").trim() }));
for (const id of ["folder", "files"])
  element<HTMLInputElement>(id).addEventListener("change", (e) => loadDropped((e.target as HTMLInputElement).files));
const drop = element("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  loadDropped(event.dataTransfer?.files ?? null);
});
element("download-json").addEventListener("click", () => {
  if (answer) download(`${answer.kind}.json`, "application/json", `${JSON.stringify(answer.result.json, null, 2)}\n`);
});
element("download-report").addEventListener("click", () => {
  if (answer) download(`${answer.kind}.html`, "text/html", answer.result.reportHtml);
});
void loadModel({ kind: "default" });

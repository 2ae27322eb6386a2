/**
 * The page: reads the form, sends requests to the worker (worker.ts runs tsvene), draws what
 * comes back: a progress bar, the heat maps (hover a cell for its value, click it for more), and
 * downloads of the JSON and the HTML report.
 */
import type { ModelInfo, ModelSource, Panel, SweepAnswer, WorkerMessage, WorkRequest } from "./protocol.js";

type Kind = "trace" | "patch" | "lens";

const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
let nextId = 0;
let kind: Kind = "trace";
let answer: SweepAnswer | null = null;

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
}

function showModel(info: ModelInfo): void {
  element("model-name").textContent = info.name;
  element("model-about").textContent = `(${info.family}, ${info.layers} layers)`;
  const select = element<HTMLSelectElement>("component");
  const perPosition = info.components.filter((c) => !c.startsWith("head_") && !c.includes("attention_weight"));
  select.replaceChildren(
    ...["block_output", "all", ...perPosition.filter((c) => c !== "block_output")].map((c) => new Option(c, c)),
  );
  if (info.demo) {
    element<HTMLInputElement>("prompt").value = info.demo.prompt;
    element<HTMLInputElement>("subject").value = info.demo.subject;
  }
  document.body.dataset.model = info.name;
}

function request(): WorkRequest {
  const component = value("component");
  if (kind === "lens") return { kind, prompt: value("prompt") };
  if (kind === "patch") return { kind, base: value("base"), source: value("source"), component };
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
  const message = await ask(request());
  if (message.type !== "result") return;
  answer = message.answer;
  element("summary").textContent = answer.summary;
  element("panels").replaceChildren(...answer.panels.map(drawPanel));
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
    if (cell) showCell(panel, cell);
  });
  section.append(heading, map);
  return section;
}

/** A clicked cell: its value (the cell's title), and its run's top tokens when the sweep gave them. */
function showCell(panel: Panel, cell: Element): void {
  const index = Number(cell.getAttribute("data-row")) * panel.cols + Number(cell.getAttribute("data-col"));
  const title = cell.querySelector("title")?.textContent ?? "";
  const top = panel.cellTopTokens?.[index];
  const lines = top ? top.map((t) => `${JSON.stringify(t.token)}  ${t.probability.toFixed(4)}`) : [];
  element("cell").textContent = [title, ...lines].join("\n");
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
  if (answer) download(`${kind}.json`, "application/json", `${JSON.stringify(answer.json, null, 2)}\n`);
});
element("download-report").addEventListener("click", () => {
  if (answer) download(`${kind}.html`, "text/html", answer.reportHtml);
});
void loadModel({ kind: "default" });

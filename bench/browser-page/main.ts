/**
 * The benchmark page: runs worker.ts with the page's query, shows each of its messages as lines
 * and logs it on the console for bench/browser.ts; body[data-state] becomes "done" or "error".
 */
import { pyveneW1 } from "../w1.js";
import { type BenchMessage, CONSOLE_PREFIX } from "./protocol.js";
import { reportLines } from "./report.js";

const log = document.getElementById("log")!;
const show = (lines: string[]) => {
  log.textContent += lines.map((line) => `${line}\n`).join("");
};
/** pyvene's figures and check values, beside which the lines print tsvene's; null when they could not be read. */
const pyvene = fetch("pyvene_cpu.json")
  .then((response) => response.json())
  .then(pyveneW1)
  .catch((error: unknown) => {
    show([`pyvene_cpu.json: ${error instanceof Error ? error.message : error}`]);
    return null;
  });

function receive(message: BenchMessage): void {
  console.log(CONSOLE_PREFIX + JSON.stringify(message));
  if (message.type === "done" || message.type === "error") document.body.dataset.state = message.type;
  pyvene.then((reference) => reference && show(reportLines(message, reference)));
}

const worker = new Worker(new URL(`worker.js${location.search}`, location.href), { type: "module" });
worker.addEventListener("message", (event: MessageEvent<BenchMessage>) => receive(event.data));
worker.addEventListener("error", (event) =>
  receive({ type: "error", message: `the worker failed: ${event.message || "it could not be loaded"}` }),
);

/**
 * A progress bar on stderr for long sweeps. It draws only when stderr is a terminal (and the user
 * did not ask for --quiet), so piped and captured output stays clean: stdout carries results only.
 */

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface ProgressBar {
  /** Sweeps call this as work completes: `done` of `total` steps. */
  readonly update: (done: number, total: number) => void;
  /** Clears the bar's line, leaving the terminal as it was. */
  finish(): void;
}

/** Redrawing more often than this only costs time; the last step is always drawn. */
const REDRAW_MS = 80;

export function progressBar(label: string, options: { quiet?: boolean; stream?: ProgressStream } = {}): ProgressBar {
  const stream = options.stream ?? process.stderr;
  if (options.quiet || !stream.isTTY) return { update: () => {}, finish: () => {} };
  let drawn = false;
  let lastDraw = 0;
  const started = Date.now();
  // A terminal of unknown size reports 0 columns.
  const width = () => stream.columns || 80;
  return {
    update(done, total) {
      const now = Date.now();
      if (done < total && now - lastDraw < REDRAW_MS) return;
      lastDraw = now;
      drawn = true;
      stream.write(`\r${renderBar(label, done, total, now - started, width())}`);
    },
    finish() {
      if (drawn) stream.write(`\r${" ".repeat(width() - 1)}\r`);
      drawn = false;
    },
  };
}

/** One line: label, bar, count, percentage and, once it can be estimated, the time left. */
export function renderBar(label: string, done: number, total: number, elapsedMs: number, columns: number): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const remaining = done > 0 && done < total ? ` ~${formatSeconds((elapsedMs / done) * (total - done))} left` : "";
  const tail = ` ${done}/${total} ${Math.floor(fraction * 100)}%${remaining}`;
  const barWidth = Math.max(10, Math.min(40, columns - label.length - tail.length - 4));
  const filled = Math.round(fraction * barWidth);
  return `${label} [${"#".repeat(filled)}${".".repeat(barWidth - filled)}]${tail}`.slice(0, Math.max(1, columns - 1));
}

function formatSeconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** Timing as ../shared/bench measured pyvene: runs after a warm-up, reporting the min and the median. */
export function timed<T>(fn: () => T, runs = 3): { result: T; min: number; median: number } {
  let result = fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    result = fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return { result, min: times[0], median: times[Math.floor(runs / 2)] };
}

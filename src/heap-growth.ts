// V8 grows the old generation's limit by a factor it picks from its own GC throughput: for a process
// that keeps a steady model and throws away one big render per poll, that factor lets the heap climb
// to 1.5-2× what it holds before a mark-compact brings it back (BENCHMARKS.md, "V8's heap growing
// factor"). Node refuses --heap-growing-percent in NODE_OPTIONS, but V8 reads the flag each time it
// sets the next limit, so setting it at start-up works for the rest of the process's life.
import v8 from "node:v8";

/** 0 leaves V8's own factor; otherwise the old generation grows by this percent past what it holds. */
export function applyHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0)
    throw new RangeError(`heap growth must be a whole, non-negative percent, not ${percent}`);
  if (percent === 0) return;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

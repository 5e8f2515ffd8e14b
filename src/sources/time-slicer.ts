// Synchronous work in turns of the event loop of bounded length. A JetStream poll at 10,000
// consumers parses ~1,000 list pages and builds 10,000 consumer states; nats.js hands replies over
// as promise resolutions, so replies that queued up while the loop was busy are all handled in one
// run of microtasks: the whole burst's work became one stall (200–450 ms measured). Jobs queued here
// run from a macrotask (setImmediate), until `budgetMs` is used up, then the loop gets a turn (I/O,
// timers, HTTP scrapes) before the rest (and /metrics responses their head start: turns.ts).
import { backgroundTurn } from "../turns.js";

export interface TimeSlicer {
  /** Runs `job` in a later turn of the event loop; resolves (or rejects) with what it returns (throws). */
  run<T>(job: () => T): Promise<T>;
}

export function createTimeSlicer(budgetMs: number): TimeSlicer {
  let queue: (() => void)[] = [];
  let next = 0;
  let scheduled = false;
  const pump = () => {
    const until = performance.now() + budgetMs;
    while (next < queue.length) {
      queue[next++]!();
      if (performance.now() >= until) break;
    }
    if (next < queue.length) {
      void backgroundTurn().then(pump);
      return;
    }
    queue = [];
    next = 0;
    scheduled = false;
  };
  return {
    run<T>(job: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push(() => {
          try {
            resolve(job());
          } catch (err) {
            reject(err as Error);
          }
        });
        if (!scheduled) {
          scheduled = true;
          void backgroundTurn().then(pump);
        }
      });
    },
  };
}

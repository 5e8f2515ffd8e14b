// Turns of the event loop for background work (a poll's parsing, the model's listeners, the
// metrics text's rendering), with a head start for /metrics responses being written.
//
// A response of 17 MB (10,000 consumers) leaves in pieces of the socket's send buffer (~4 MB on
// loopback), a piece per turn of the loop: behind a poll's steps of 10–30 ms each, a scrape that
// takes 15 ms on an idle daemon took 100–300 ms (the p99). Background work waiting for its next turn
// therefore waits while a response started less than HEAD_START_MS ago is being written, and goes on
// when it is written or its head start is over: a slow client holds nobody for longer than that.

/** The longest a response holds background work back. */
export const HEAD_START_MS = 100;

/** Start times (performance.now()) of responses being written. */
const writing = new Map<symbol, number>();
/** Background turns waiting for responses to be written: each checks again when one is. */
const waiting = new Set<() => void>();

/** A response starts being written; call the result when it is written (or its client gone). */
export function responseStarted(): () => void {
  const id = Symbol("response");
  writing.set(id, performance.now());
  return () => {
    if (!writing.delete(id)) return;
    for (const wake of [...waiting]) wake();
  };
}

/** Until when (performance.now()) background work waits; 0 when nothing is being written. */
function heldUntil(): number {
  let until = 0;
  for (const started of writing.values()) until = Math.max(until, started + HEAD_START_MS);
  return until;
}

/** The next turn of the event loop for background work (setImmediate, after any head start). */
export function backgroundTurn(): Promise<void> {
  return new Promise<void>((resolve) => {
    const attempt = () => {
      // Whole milliseconds, as timers count: a timer for a fraction of one would come back early.
      const waitMs = Math.ceil(heldUntil() - performance.now());
      if (waitMs <= 0) {
        setImmediate(resolve);
        return;
      }
      const wake = () => {
        clearTimeout(timer);
        waiting.delete(wake);
        attempt();
      };
      const timer = setTimeout(wake, waitMs);
      waiting.add(wake);
    };
    attempt();
  });
}

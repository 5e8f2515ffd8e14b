// Polling for a condition with a deadline: the only way tests wait.

/**
 * Calls `probe` until it returns a value that is not undefined/false, or throws after `timeoutMs`;
 * `what` may be a function, read when the wait fails (to tell the last values seen).
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 15_000,
    intervalMs = 50,
    what = "condition",
  }: { timeoutMs?: number; intervalMs?: number; what?: string | (() => string) } = {},
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > until) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}${lastError ? `: ${String(lastError)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Runs `round` (given its number, from 0) while `going()`, resting `ms` after each: a simulated
 * agent's working pace, or a watcher's interval. That is the workload a test measures (an ack
 * rate, when an alert first fired), not a wait for a condition: for that, waitFor.
 */
export async function atPace(
  ms: number,
  going: () => boolean,
  round: (n: number) => Promise<unknown> | unknown,
): Promise<void> {
  for (let n = 0; going(); n++) {
    await round(n);
    if (going()) await new Promise((r) => setTimeout(r, ms));
  }
}

// Stopping a long-running command (the daemon, the demo, the simulator) on SIGINT/SIGTERM.

/** Stops `stop` on the first SIGINT/SIGTERM; a second signal, or `forceAfterMs`, forces the exit. */
export function onShutdownSignal(stop: () => Promise<void>, forceAfterMs = 4500): void {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(130);
    stopping = true;
    const force = setTimeout(() => process.exit(1), forceAfterMs);
    force.unref();
    void stop()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(force);
        process.exit(0);
      });
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

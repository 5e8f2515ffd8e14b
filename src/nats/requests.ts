// Requests on one reply subscription, for the poller's thousands of JetStream API requests a poll.
// nats.js's `request()` builds an Error for every request, answered or not (its `cancel()` rejects
// the already settled promise with a new RequestError: nats-io/nats.deno#614), and captures its
// stack. The same 13,012 requests of a 30,000-consumer poll cost the bare client 926 ms of CPU
// through it, 570 ms through this (~27 µs a request; BENCHMARKS.md, 2026-12-07, evening). Here an
// error is made only for a request that fails.
import {
  createInbox,
  NoRespondersError,
  TimeoutError,
  type Msg,
  type NatsConnection,
} from "@nats-io/transport-node";

export interface Requests {
  /** The reply to `data` sent to `subject`; rejects with TimeoutError, NoRespondersError or a closed connection's error. */
  request(subject: string, data: Uint8Array): Promise<Msg>;
  /** Rejects what is still waiting and ends the subscription. */
  stop(): void;
}

interface Waiting {
  readonly subject: string;
  readonly deadline: number;
  readonly resolve: (msg: Msg) => void;
  readonly reject: (err: Error) => void;
}

/** How often waiting requests are checked against their deadline: a timeout is late by at most this. */
const SWEEP_MS = 100;

export function startRequests(nc: NatsConnection, timeoutMs: number): Requests {
  const inbox = createInbox();
  // One timeout for all: requests wait in the order they were sent, which is their deadlines' order.
  const waiting = new Map<number, Waiting>();
  let sent = 0;
  let sweeper: ReturnType<typeof setInterval> | undefined;
  let stopped: Error | undefined;

  function settle(id: number, msg: Msg): void {
    const w = waiting.get(id);
    if (!w) return; // answered after its timeout
    waiting.delete(id);
    // The server's "no responders" status: an empty message with status 503 (nats.js's own test).
    if (msg.data.length === 0 && msg.headers?.code === 503) w.reject(new NoRespondersError(w.subject));
    else w.resolve(msg);
  }

  function rejectAll(err: Error): void {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  }

  function sweep(): void {
    const now = performance.now();
    for (const [id, w] of waiting) {
      if (w.deadline > now) break;
      waiting.delete(id);
      w.reject(new TimeoutError());
    }
    if (waiting.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  const subscription = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) rejectAll(err);
      else settle(Number(msg.subject.slice(inbox.length + 1)), msg);
    },
  });
  void subscription.closed.then(
    () => rejectAll(stopped ?? new Error("the NATS connection closed")),
    (err: Error) => rejectAll(err),
  );

  return {
    request(subject, data) {
      if (stopped) return Promise.reject(stopped);
      const id = ++sent;
      return new Promise<Msg>((resolve, reject) => {
        waiting.set(id, { subject, deadline: performance.now() + timeoutMs, resolve, reject });
        try {
          nc.publish(subject, data, { reply: `${inbox}.${id}` });
        } catch (err) {
          waiting.delete(id);
          reject(err as Error);
          return;
        }
        if (sweeper === undefined) {
          sweeper = setInterval(sweep, SWEEP_MS);
          sweeper.unref();
        }
      });
    },
    stop() {
      stopped ??= new Error("stopped");
      rejectAll(stopped);
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
      if (!subscription.isClosed()) subscription.unsubscribe();
    },
  };
}

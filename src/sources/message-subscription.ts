// A core NATS subscription feeding a message handler: what the status and event sources share.
import type { RunningSource, SourceContext } from "./source.js";

/** Handles one message; never throws on input (everything refused is counted). */
export type MessageHandler = (subject: string, data: Uint8Array) => void;

/** Subscribes `handle` to `subject`; `source` names the source in log lines. */
export function subscribeHandler(
  ctx: SourceContext,
  subject: string,
  source: string,
  handle: MessageHandler,
): RunningSource {
  const sub = ctx.nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) {
        ctx.log.warn({ err: err.message }, `${source} subscription error`);
        return;
      }
      // The handler never throws on input; this guards the subscription against a bug downstream.
      try {
        handle(msg.subject, msg.data);
      } catch (e) {
        ctx.log.error({ err: (e as Error).message }, `${source} handler failed`);
      }
    },
  });
  return {
    async stop() {
      sub.unsubscribe();
    },
  };
}

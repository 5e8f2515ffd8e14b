// Unrouted work: a tap on {prefix}.agents.*.tasks and .inbox (core NATS). A message whose subject no
// stream stores is counted in model.unrouted; one stored by a stream is ignored (its stream's
// readers see it). Decided against the streams of the poll after it arrived, so that a stream
// created just before its first message is not mistaken for none.
//
// The tap has a price, documented in docs/lost-work.md: with a subscriber on the subject, a
// publisher's `js.publish` to a subject no stream stores no longer fails at once with "no
// responders"; it times out (the publish still fails). `--unrouted.subscribe=false` turns it off.
import { classifySubject } from "../logic/classify.js";
import { LabelCap } from "../logic/label-cap.js";
import { subjectMatches } from "../logic/subject-match.js";
import type { PollResult } from "../model/jetstream.js";
import type { RunningSource, SourceContext } from "./source.js";

/** Messages waiting for the next poll's verdict at most (beyond, the oldest are decided now). */
const MAX_WAITING = 10_000;

interface Waiting {
  readonly subject: string;
  readonly role: string;
  readonly kind: string;
}

function storedBy(poll: PollResult, subject: string): boolean {
  for (const s of poll.streams.values()) if (s.subjects.some((f) => subjectMatches(f, subject))) return true;
  return false;
}

export function startUnrouted(ctx: SourceContext): RunningSource {
  const { nc, config, org, log } = ctx;
  if (!config["unrouted.subscribe"]) return { stop: async () => undefined };
  const prefix = config["subject-prefix"];
  const roles = new LabelCap(config["labels.max-values"], () =>
    org.health.countOverflow("orgwatch_unrouted_messages_total"),
  );
  let waiting: Waiting[] = [];

  const decide = (poll: PollResult | undefined, list: Waiting[]) => {
    for (const w of list) {
      if (poll && storedBy(poll, w.subject)) continue;
      const role = roles.admit(w.role);
      org.unrouted.count(role, w.kind);
      log.warn(
        { subject: w.subject, role: w.role },
        "message on an agent subject that no stream stores: dropped by NATS",
      );
    }
  };

  const subs = ["tasks", "inbox"].map((leaf) =>
    nc.subscribe(`${prefix}.agents.*.${leaf}`, {
      callback: (err, msg) => {
        if (err) return;
        const { kind, role } = classifySubject(prefix, msg.subject);
        if (kind !== "tasks" && kind !== "inbox") return;
        const poll = org.jetstream.current;
        // Stored by a stream the last poll knew: nothing to wait for.
        if (poll && storedBy(poll, msg.subject)) return;
        waiting.push({ subject: msg.subject, role, kind });
        if (waiting.length > MAX_WAITING) decide(poll, waiting.splice(0, waiting.length - MAX_WAITING));
      },
    }),
  );
  const onPolled = (poll: PollResult) => {
    const list = waiting;
    waiting = [];
    decide(poll, list);
  };
  org.jetstream.on("polled", onPolled);
  return {
    async stop() {
      org.jetstream.off("polled", onPolled);
      for (const s of subs) s.unsubscribe();
    },
  };
}

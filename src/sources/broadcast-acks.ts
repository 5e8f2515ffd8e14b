// Broadcast acknowledgements: after each poll, the stored times of the broadcasts each agent's ack
// floor passed, read by sequence (cached: every agent passes the same broadcasts), handed to
// model.broadcasts, which observes publish → ack times (see model/broadcasts.ts for what counts).
import pLimit from "p-limit";
import { subjectMatches } from "../logic/subject-match.js";
import { RECENT_BROADCASTS, type PassedRange, type RecentBroadcast } from "../model/broadcasts.js";
import type { PollResult } from "../model/jetstream.js";
import type { RunningSource, SourceContext } from "./source.js";

/** Stored times kept; a broadcast's time never changes, so this only bounds memory. */
const MAX_CACHED = 10_000;

interface Stored {
  readonly subject: string;
  readonly ms: number;
}

export async function startBroadcastAcks(ctx: SourceContext): Promise<RunningSource> {
  const { jsm, org, log } = ctx;
  const limit = pLimit(ctx.config["poll-concurrency"]);
  // Promises, so that agents passing the same broadcast in one poll share one read.
  const cache = new Map<string, Promise<Stored | null>>();
  let work: Promise<void> = Promise.resolve();

  function read(stream: string, seq: number): Promise<Stored | null> {
    const key = `${stream}\u0000${seq}`;
    let found = cache.get(key);
    if (!found) {
      found = limit(async () => {
        const m = await jsm.streams.getMessage(stream, { seq });
        return m ? { subject: m.subject, ms: m.time.getTime() } : null;
      });
      // An error (NATS gone, a timeout) is not remembered: the next range that needs it reads again.
      found.catch(() => cache.delete(key));
      cache.set(key, found);
      if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
    }
    return found;
  }

  async function observe(range: PassedRange): Promise<void> {
    const stored = new Map<number, number>();
    const reads: Promise<void>[] = [];
    for (let seq = range.from; seq <= range.to; seq++) {
      reads.push(
        read(range.stream, seq).then((m) => {
          if (!m) return; // deleted (max age, purge)
          if (
            range.filterSubjects.length > 0 &&
            !range.filterSubjects.some((f) => subjectMatches(f, m.subject))
          )
            return;
          stored.set(seq, m.ms);
        }),
      );
    }
    const failed = (await Promise.allSettled(reads)).filter((r) => r.status === "rejected");
    if (failed.length > 0) {
      log.debug(
        { stream: range.stream, consumer: range.consumer, failed: failed.length },
        "could not read some acknowledged broadcasts; their ack times are not observed",
      );
    }
    org.broadcasts.observePassed(range, stored);
  }

  /** The latest broadcasts of each broadcasts stream, read through the same cache (read once each). */
  async function readRecent(result: PollResult): Promise<void> {
    const recent: RecentBroadcast[] = [];
    for (const s of result.streams.values()) {
      if (s.kind !== "broadcasts" || s.messages === 0) continue;
      const from = Math.max(s.firstSequence, s.lastSequence - RECENT_BROADCASTS + 1);
      const reads = [];
      for (let seq = s.lastSequence; seq >= from; seq--)
        reads.push(read(s.name, seq).then((m) => ({ seq, m })));
      for (const r of await Promise.allSettled(reads)) {
        if (r.status === "fulfilled" && r.value.m)
          recent.push({
            stream: s.name,
            seq: r.value.seq,
            subject: r.value.m.subject,
            storedMs: r.value.m.ms,
          });
      }
    }
    recent.sort((a, b) => b.storedMs - a.storedMs || b.seq - a.seq);
    org.broadcasts.recent = recent.slice(0, RECENT_BROADCASTS);
  }

  const onPoll = (result: PollResult) => {
    // Synchronously, so that floors advance in poll order; the reads follow in the background.
    const passed = org.broadcasts.applyPoll(result, Date.now());
    work = work.then(async () => {
      await Promise.all(passed.map(observe));
      await readRecent(result).catch((err: unknown) =>
        log.debug({ err: (err as Error).message }, "could not read the latest broadcasts"),
      );
    });
  };
  org.jetstream.on("polled", onPoll);

  return {
    async stop() {
      org.jetstream.off("polled", onPoll);
      await work;
    },
  };
}

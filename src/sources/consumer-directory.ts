// Which role and kind a consumer named in an advisory has, and the labels its counters get.
// The last poll knows every consumer; one that it does not know yet (advisories replayed at startup,
// before the first poll) is classified from its stream's and its own info, asked once and cached
// until the next poll. Durable consumers are the organization's setup and always get their own
// series; ephemeral ones come and go, so their labels are capped.
import { classifyConsumer, classifyStream, type Classification } from "../logic/classify.js";
import { LabelCap, OVERFLOW_VALUE } from "../logic/label-cap.js";
import type { ConsumerLabels } from "../model/deadletters.js";
import { consumerKey } from "../model/jetstream.js";
import { filterSubjectsOf, isDurable } from "./jetstream-poller.js";
import type { SourceContext } from "./source.js";

export interface ConsumerIdentity extends Classification {
  /** Counter labels: the consumer's own, or `other` once the cap on ephemeral consumers is reached. */
  readonly labels: ConsumerLabels;
  /** The label cap refused this consumer (the caller counts the overflow against its metric). */
  readonly overflow: boolean;
}

interface Resolved extends Classification {
  readonly durable: boolean;
}

const UNKNOWN: Resolved = { kind: "other", role: "", durable: false };
const MAX_CACHED = 10_000;

export class ConsumerDirectory {
  private readonly cache = new Map<string, Promise<Resolved>>();
  private readonly streams = new Map<string, Promise<Classification | undefined>>();
  private readonly ephemeralCap: LabelCap;
  private readonly rolePattern: RegExp;
  private readonly clear = () => {
    this.cache.clear();
    this.streams.clear();
  };

  constructor(private readonly ctx: SourceContext) {
    this.ephemeralCap = new LabelCap(ctx.config["labels.max-values"], () => undefined);
    this.rolePattern = new RegExp(ctx.config["broadcast.role-pattern"]);
    ctx.org.jetstream.on("polled", this.clear);
  }

  close(): void {
    this.ctx.org.jetstream.off("polled", this.clear);
  }

  async identify(stream: string, consumer: string): Promise<ConsumerIdentity> {
    const key = consumerKey(stream, consumer);
    const polled = this.ctx.org.jetstream.current?.consumers.get(key);
    const resolved = polled
      ? { kind: polled.kind, role: polled.role, durable: polled.durable }
      : await this.resolve(key, stream, consumer);
    const admitted = resolved.durable || this.ephemeralCap.admit(key) !== OVERFLOW_VALUE;
    return {
      kind: resolved.kind,
      role: resolved.role,
      labels: admitted
        ? { stream, consumer, role: resolved.role }
        : { stream: OVERFLOW_VALUE, consumer: OVERFLOW_VALUE, role: "" },
      overflow: !admitted,
    };
  }

  private resolve(key: string, stream: string, consumer: string): Promise<Resolved> {
    let found = this.cache.get(key);
    if (!found) {
      if (this.cache.size >= MAX_CACHED) this.cache.clear();
      found = this.lookUp(stream, consumer);
      this.cache.set(key, found);
    }
    return found;
  }

  private async lookUp(stream: string, consumer: string): Promise<Resolved> {
    const prefix = this.ctx.config["subject-prefix"];
    let streamClass = this.streams.get(stream);
    if (!streamClass) {
      // The last poll classified the stream unless it is newer than that poll.
      const polled = this.ctx.org.jetstream.current?.streams.get(stream);
      streamClass = polled
        ? Promise.resolve({ kind: polled.kind, role: polled.role })
        : this.ctx.jsm.streams
            .info(stream)
            .then((si) => classifyStream(prefix, si.config.subjects ?? []))
            .catch(() => undefined);
      this.streams.set(stream, streamClass);
    }
    const [sc, ci] = await Promise.all([
      streamClass,
      this.ctx.jsm.consumers.info(stream, consumer).catch(() => undefined),
    ]);
    if (!sc) return UNKNOWN;
    if (!ci) return { ...sc, durable: false };
    const c = classifyConsumer(prefix, sc, consumer, filterSubjectsOf(ci.config), this.rolePattern);
    return { kind: c.kind, role: c.role, durable: isDurable(ci.config) };
  }
}

// The yardstick: the JetStream API requests an orgwatch poll needs, issued by a minimal client with
// nothing else to do (paged STREAM.LIST, paged CONSUMER.LIST per stream with consumers, and one
// STREAM.MSG.GET per lagging consumer for its oldest unacknowledged message), at the same
// concurrency. And, for scale, what orgwatch avoids: one CONSUMER.INFO per consumer.
import pLimit from "p-limit";
import type { Msg, NatsConnection } from "@nats-io/transport-node";

/** Sends one request: nats.js's `request()` by default, or orgwatch's own (src/nats/requests.ts). */
export type Send = (subject: string, data: Uint8Array) => Promise<Msg>;

interface Page {
  total: number;
  offset: number;
  limit: number;
  streams?: {
    config: { name: string };
    state: { consumer_count: number };
  }[];
  consumers?: {
    name: string;
    stream_name: string;
    config: { filter_subject?: string };
    num_pending: number;
    num_ack_pending: number;
    ack_floor: { stream_seq: number };
  }[];
  error?: { description: string };
}

export interface BareResult {
  readonly requests: number;
  readonly streams: number;
  readonly consumers: number;
  readonly reads: number;
  readonly wallMs: number;
  readonly cpuMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const viaNats =
  (nc: NatsConnection): Send =>
  (subject, data) =>
    nc.request(subject, data, { timeout: 10_000 });

async function request<T>(send: Send, subject: string, body: unknown): Promise<T> {
  const msg = await send(subject, encoder.encode(JSON.stringify(body)));
  const parsed = JSON.parse(decoder.decode(msg.data)) as T & { error?: { description: string } };
  if (parsed.error) throw new Error(`${subject}: ${parsed.error.description}`);
  return parsed;
}

/** Lists everything and reads each lagging consumer's oldest unacknowledged message, like one cold poll. */
export async function barePoll(
  nc: NatsConnection,
  concurrency: number,
  send: Send = viaNats(nc),
): Promise<BareResult> {
  const limit = pLimit(concurrency);
  let requests = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const list = async (subject: string, field: "streams" | "consumers") => {
    requests++;
    const first = await limit(() => request<Page>(send, subject, { offset: 0 }));
    const items = [...(first[field] ?? [])];
    const offsets: number[] = [];
    for (let o = items.length; o < first.total; o += first.limit) offsets.push(o);
    requests += offsets.length;
    const pages = await Promise.all(
      offsets.map((offset) => limit(() => request<Page>(send, subject, { offset }))),
    );
    for (const p of pages) items.push(...((p[field] ?? []) as typeof items));
    return items;
  };
  const streams = (await list("$JS.API.STREAM.LIST", "streams")) as NonNullable<Page["streams"]>;
  let consumers = 0;
  let reads = 0;
  await Promise.all(
    streams
      .filter((s) => s.state.consumer_count > 0)
      .map(async (s) => {
        const cs = (await list(`$JS.API.CONSUMER.LIST.${s.config.name}`, "consumers")) as NonNullable<
          Page["consumers"]
        >;
        consumers += cs.length;
        await Promise.all(
          cs
            .filter((c) => c.num_pending + c.num_ack_pending > 0)
            .map((c) =>
              limit(async () => {
                requests++;
                reads++;
                await request(send, `$JS.API.STREAM.MSG.GET.${s.config.name}`, {
                  seq: c.ack_floor.stream_seq + 1,
                  next_by_subj: c.config.filter_subject ?? ">",
                });
              }),
            ),
        );
      }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    requests,
    streams: streams.length,
    consumers,
    reads,
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** One CONSUMER.INFO per consumer (what a naive exporter does): the cost the paged lists avoid. */
export async function perConsumerInfo(
  nc: NatsConnection,
  consumers: readonly { stream: string; name: string }[],
  concurrency: number,
): Promise<{ requests: number; wallMs: number }> {
  const limit = pLimit(concurrency);
  const t0 = performance.now();
  await Promise.all(
    consumers.map((c) =>
      limit(() => request(viaNats(nc), `$JS.API.CONSUMER.INFO.${c.stream}.${c.name}`, {})),
    ),
  );
  return { requests: consumers.length, wallMs: performance.now() - t0 };
}

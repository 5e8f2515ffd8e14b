// The NATS micro protocol (the `nats micro` commands, ADR-32) for orgwatch's services: discovery on
// $SRV.PING|INFO|STATS (all services, by name, by name and id), one queue-grouped endpoint, errors as
// the Nats-Service-Error headers. Written here rather than taken from @nats-io/services, which exists
// only as a 3.0.0 prerelease pinned to a prerelease nats-core (a second copy of the client, or an npm
// override, in a production install); the protocol is five JSON documents and two headers. The tests
// check it with that library's client (a dev dependency) as a standard client would use it.
import {
  headers as natsHeaders,
  nuid,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";

export const SERVICE_ERROR = "Nats-Service-Error";
export const SERVICE_ERROR_CODE = "Nats-Service-Error-Code";

/** An error a handler answers with: sent as the micro error headers, with a JSON body too. */
export class ServiceError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface EndpointOptions {
  readonly name: string;
  readonly subject: string;
  readonly queueGroup?: string;
  /** Returns the reply body; throws ServiceError for an error reply. */
  handle(data: Uint8Array): Uint8Array;
}

export interface ServiceOptions {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly metadata?: Record<string, string>;
  readonly endpoint: EndpointOptions;
}

interface EndpointStats {
  num_requests: number;
  num_errors: number;
  last_error: string;
  processing_time: number;
  average_processing_time: number;
}

export interface RunningService {
  readonly id: string;
  stop(): Promise<void>;
}

const encoder = new TextEncoder();

export function startService(nc: NatsConnection, options: ServiceOptions): RunningService {
  const id = nuid.next();
  const started = new Date().toISOString();
  const { name, version, endpoint } = options;
  const metadata = options.metadata ?? {};
  const queueGroup = endpoint.queueGroup ?? "q";
  const stats: EndpointStats = {
    num_requests: 0,
    num_errors: 0,
    last_error: "",
    processing_time: 0,
    average_processing_time: 0,
  };
  const identity = { name, id, version, metadata };
  const documents = {
    PING: () => ({ type: "io.nats.micro.v1.ping_response", ...identity }),
    INFO: () => ({
      type: "io.nats.micro.v1.info_response",
      ...identity,
      description: options.description,
      endpoints: [{ name: endpoint.name, subject: endpoint.subject, queue_group: queueGroup, metadata: {} }],
    }),
    STATS: () => ({
      type: "io.nats.micro.v1.stats_response",
      ...identity,
      started,
      endpoints: [
        { name: endpoint.name, subject: endpoint.subject, queue_group: queueGroup, ...stats, data: null },
      ],
    }),
  };
  const subs: Subscription[] = [];
  for (const verb of Object.keys(documents) as (keyof typeof documents)[]) {
    for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${name}`, `$SRV.${verb}.${name}.${id}`]) {
      subs.push(
        nc.subscribe(subject, {
          callback: (err, msg) => {
            if (!err) msg.respond(encoder.encode(JSON.stringify(documents[verb]())));
          },
        }),
      );
    }
  }
  subs.push(
    nc.subscribe(endpoint.subject, {
      queue: queueGroup,
      callback: (err, msg: Msg) => {
        if (err || !msg.reply) return;
        const t0 = process.hrtime.bigint();
        stats.num_requests++;
        try {
          msg.respond(endpoint.handle(msg.data));
        } catch (e) {
          const error = e instanceof ServiceError ? e : new ServiceError(500, "internal error");
          stats.num_errors++;
          stats.last_error = `${error.code}:${error.message}`;
          const h = natsHeaders();
          h.set(SERVICE_ERROR, error.message);
          h.set(SERVICE_ERROR_CODE, String(error.code));
          msg.respond(encoder.encode(JSON.stringify({ error: error.message, code: error.code })), {
            headers: h,
          });
        } finally {
          const ns = Number(process.hrtime.bigint() - t0);
          stats.processing_time += ns;
          stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
        }
      },
    }),
  );
  return {
    id,
    async stop() {
      for (const s of subs) s.unsubscribe();
    },
  };
}

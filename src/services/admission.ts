// Admission control as a service (DESIGN.md §8): "may I give the CTO another task?" answered from
// the model, with no NATS round trip per request, over NATS ({prefix}.orgwatch.admission, the micro
// protocol: services/micro.ts) and HTTP (GET /api/v1/admission, exporters/http.ts). Both answer
// through Admission.answer, so they give the same answer.
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AdmissionError,
  decideAdmission,
  parseAdmissionRequest,
  type AdmissionReply,
  type RoleState,
} from "../logic/admission.js";
import { LabelCap, OVERFLOW_VALUE } from "../logic/label-cap.js";
import { lagOf } from "../logic/consumer-status.js";
import { subjectMatches } from "../logic/subject-match.js";
import type { ConsumerState, PollResult } from "../model/jetstream.js";
import type { Organization } from "../model/organization.js";
import { VERSION } from "../version.js";
import { ServiceError, startService, type RunningService } from "./micro.js";

export const ADMISSION_SERVICE = "orgwatch";

export class Admission {
  private readonly roles: LabelCap;

  constructor(private readonly org: Organization) {
    this.roles = new LabelCap(org.config["labels.max-values"], () =>
      org.health.countOverflow("orgwatch_admission_requests_total"),
    );
  }

  /** The answer to a request (a parsed JSON body or query); throws AdmissionError. */
  answer(value: unknown, nowMs = Date.now()): AdmissionReply {
    let role = OVERFLOW_VALUE;
    try {
      const request = parseAdmissionRequest(value);
      role = request.role;
      const reply = decideAdmission(
        request,
        this.roleState(request.role, nowMs),
        { maxLag: this.org.config["admission.max-lag"], maxEtaMs: this.org.config["backpressure.max-eta"] },
        nowMs,
      );
      this.org.admissions.count(this.label(role), reply.verdict);
      return reply;
    } catch (err) {
      this.org.admissions.count(this.label(role), "error");
      throw err;
    }
  }

  private label(role: string): string {
    return this.org.agents.isKnown(role) ? role : this.roles.admit(role);
  }

  /** Task consumers by role, per poll: a request looks at its role's only (10,000 consumers). */
  private readonly byRole = new WeakMap<PollResult, Map<string, ConsumerState[]>>();

  private taskConsumers(poll: PollResult | undefined, role: string): ConsumerState[] {
    if (!poll) return [];
    let index = this.byRole.get(poll);
    if (!index) {
      index = new Map();
      for (const c of poll.consumers.values()) {
        if (!c.durable || c.kind !== "tasks") continue;
        const list = index.get(c.role) ?? [];
        list.push(c);
        index.set(c.role, list);
      }
      this.byRole.set(poll, index);
    }
    return index.get(role) ?? [];
  }

  private roleState(role: string, nowMs: number): RoleState {
    const poll = this.org.jetstream.current;
    const consumers = this.taskConsumers(poll, role).map((c) => ({
      name: c.name,
      lag: lagOf(c),
      oldestUnackedMs: c.oldestUnackedMs,
      status: c.status,
      ackRatePerSecond: c.ackRatePerSecond,
    }));
    const subject = `${this.org.config["subject-prefix"]}.agents.${role}.tasks`;
    const hasStream = [...(poll?.streams.values() ?? [])].some((s) =>
      s.subjects.some((f) => subjectMatches(f, subject)),
    );
    const view = this.org.agents
      .view(nowMs, this.org.config["agent.stale-after"])
      .find((a) => a.role === role);
    return {
      known: this.org.agents.isKnown(role),
      consumers,
      hasStream,
      agentUp: view?.lastStatusMs === undefined ? undefined : view.up,
    };
  }
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The admission endpoint as a NATS micro service named `orgwatch`. */
export function startAdmissionService(
  nc: NatsConnection,
  admission: Admission,
  prefix: string,
): RunningService {
  return startService(nc, {
    name: ADMISSION_SERVICE,
    version: VERSION,
    description: "orgwatch admission control: may an agent be given more tasks now?",
    endpoint: {
      name: "admission",
      subject: `${prefix}.orgwatch.admission`,
      handle(data) {
        let request: unknown;
        try {
          request = JSON.parse(decoder.decode(data));
        } catch {
          throw new ServiceError(400, 'the request must be JSON like {"role":"cto","tasks":1}');
        }
        try {
          return encoder.encode(JSON.stringify(admission.answer(request)));
        } catch (err) {
          if (err instanceof AdmissionError) throw new ServiceError(err.code, err.message);
          throw err;
        }
      },
    },
  });
}

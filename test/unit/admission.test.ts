// Admission decisions (logic/admission.ts) and the ack-rate arithmetic behind them (logic/ack-rate.ts).
import { describe, expect, it } from "vitest";
import {
  ackRatePerSecond,
  drainEtaSeconds,
  observeAcks,
  type AckHistory,
  type AckPoint,
} from "../../src/logic/ack-rate.js";
import {
  AdmissionError,
  decideAdmission,
  parseAdmissionRequest,
  type RoleState,
} from "../../src/logic/admission.js";

const HOUR = 3_600_000;

function point(over: Partial<AckPoint>): AckPoint {
  return { atMs: 0, lag: 0, arrivals: 0, ended: 0, createdMs: 1, floorOnly: false, ...over };
}

describe("ack rate and drain time", () => {
  it("counts acks from lag, arrivals and what ended otherwise: the reference's arithmetic", () => {
    // 50 tasks published at once, one acknowledged every 30 minutes.
    let h: AckHistory | undefined = observeAcks(
      undefined,
      point({ atMs: 0, lag: 50, arrivals: 50 }),
      24 * HOUR,
    );
    for (let i = 1; i <= 4; i++)
      h = observeAcks(h, point({ atMs: i * 0.5 * HOUR, lag: 50 - i, arrivals: 50 }), 24 * HOUR);
    const rate = ackRatePerSecond(h!)!;
    expect(rate * 3600).toBeCloseTo(2, 10);
    // 46 left at 2 an hour: 23 hours (the reference's "25-hour backlog" for all 50).
    expect(drainEtaSeconds(46, rate)).toBeCloseTo(23 * 3600, 6);
  });

  it("does not count dead letters, terminations or lost messages as acks, nor redeliveries twice", () => {
    let h = observeAcks(undefined, point({ atMs: 0, lag: 5, arrivals: 5 }), HOUR);
    // One dead-lettered (lag 5 → 4, ended +1), and one redelivered (lag unchanged): 0 acks.
    h = observeAcks(h, point({ atMs: 60_000, lag: 4, arrivals: 5, ended: 1 }), HOUR);
    expect(h.acked).toBe(0);
    // Two new tasks arrive, three acked (one above the floor: lag says so all the same).
    h = observeAcks(h, point({ atMs: 120_000, lag: 3, arrivals: 7, ended: 1 }), HOUR);
    expect(h.acked).toBe(3);
  });

  it("is unknown with one poll, 0 with no lag, +Inf with lag and no acks; starts again for a new consumer", () => {
    const one = observeAcks(undefined, point({ lag: 3 }), HOUR);
    expect(ackRatePerSecond(one)).toBeUndefined();
    expect(drainEtaSeconds(0, undefined)).toBe(0);
    const idle = observeAcks(one, point({ atMs: 60_000, lag: 3 }), HOUR);
    expect(drainEtaSeconds(3, ackRatePerSecond(idle))).toBe(Infinity);
    const recreated = observeAcks(idle, point({ atMs: 120_000, lag: 0, createdMs: 999_999 }), HOUR);
    expect(recreated.acked).toBe(0);
    expect(recreated.samples).toEqual([120_000, 0]);
  });

  it("measures over the window only, with bounded samples", () => {
    let h = observeAcks(undefined, point({ atMs: 0, lag: 0, arrivals: 0 }), HOUR);
    // Fast at first (10 a minute for an hour), then 1 a minute for an hour.
    let arrivals = 0;
    for (let m = 1; m <= 120; m++) {
      arrivals += m <= 60 ? 10 : 1;
      h = observeAcks(h, point({ atMs: m * 60_000, lag: 0, arrivals }), HOUR);
    }
    expect(h.samples.length).toBeLessThanOrEqual(2 * 62);
    expect(ackRatePerSecond(h)! * 60).toBeCloseTo(1, 1);
  });
});

describe("admission", () => {
  const settings = { maxLag: 5, maxEtaMs: 4 * HOUR };
  const now = 10 * HOUR;
  const state = (
    over: Partial<RoleState> & { lag?: number; rate?: number; status?: "ok" | "stalled" } = {},
  ) => ({
    known: true,
    hasStream: true,
    agentUp: true,
    consumers: [
      {
        name: "cto-worker",
        lag: over.lag ?? 0,
        oldestUnackedMs: over.lag ? now - 3_600_000 : undefined,
        status: over.status ?? "ok",
        ackRatePerSecond: over.rate,
      },
    ],
    ...over,
  });
  const ask = (body: unknown, s: RoleState) => decideAdmission(parseAdmissionRequest(body), s, settings, now);

  it("defers when the backlog would finish after the task's SLA, and says why in words", () => {
    const reply = ask(
      { role: "cto", tasks: 1, complete_within_minutes: 60 },
      state({ lag: 3, rate: 2 / 3600 }),
    );
    expect(reply.verdict).toBe("defer");
    expect(reply.reason).toBe(
      "cto has 3 tasks waiting; at 2 an hour the last would finish in 2h, after its 1h SLA",
    );
    expect(reply).toMatchObject({ lag: 3, drain_eta_seconds: 7200, oldest_unacked_age_seconds: 3600 });
  });

  it("defers over the max lag (the reference's 5), accepts within it", () => {
    expect(ask({ role: "cto", tasks: 2 }, state({ lag: 4, rate: 1 / 60 })).verdict).toBe("defer");
    const ok = ask({ role: "cto", tasks: 1 }, state({ lag: 4, rate: 1 / 60 }));
    expect(ok.verdict).toBe("accept");
    expect(ok.reason).toBe(
      "cto has 4 tasks waiting; the last would finish in 5m at 60 an hour, within the 4h a backlog may take",
    );
  });

  it("rejects with no stream, no consumer, a stalled consumer or an agent gone silent", () => {
    expect(
      ask({ role: "cto" }, { known: true, hasStream: false, agentUp: undefined, consumers: [] }).reason,
    ).toBe("no stream stores cto's tasks: the task would be dropped");
    expect(
      ask({ role: "cto" }, { known: true, hasStream: true, agentUp: undefined, consumers: [] }).verdict,
    ).toBe("reject");
    const stalled = ask({ role: "cto" }, state({ lag: 2, rate: 0, status: "stalled" }));
    expect(stalled).toMatchObject({ verdict: "reject", drain_eta_seconds: null, consumer_status: "stalled" });
    expect(ask({ role: "cto" }, state({ agentUp: false })).verdict).toBe("reject");
    // Never reported a status: not judged on it.
    expect(ask({ role: "cto" }, state({ agentUp: undefined })).verdict).toBe("accept");
  });

  it("does not call an idle agent slow: no acks over the window with nothing to ack is no pace, not zero", () => {
    expect(ask({ role: "cto", tasks: 1 }, state({ lag: 0, rate: 0 })).verdict).toBe("accept");
  });

  it("answers bad requests and unknown roles with a clear error", () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as AdmissionError;
      }
      throw new Error("no error");
    };
    expect(err(() => parseAdmissionRequest("cto"))).toMatchObject({ code: 400 });
    expect(err(() => parseAdmissionRequest({ role: "" }))).toMatchObject({ code: 400 });
    expect(err(() => parseAdmissionRequest({ role: "a.b" }))).toMatchObject({ code: 400 });
    expect(err(() => parseAdmissionRequest({ role: "cto", tasks: -1 })).message).toBe(
      '"tasks" must be a number from 0 to 10000',
    );
    expect(err(() => parseAdmissionRequest({ role: "cto", tasks: "NaN" }))).toMatchObject({ code: 400 });
    expect(
      err(() =>
        ask({ role: "nobody" }, { known: false, hasStream: false, agentUp: undefined, consumers: [] }),
      ),
    ).toMatchObject({
      code: 404,
      message: 'unknown role "nobody": no stream, consumer or status of it is known',
    });
  });
});

// Admission requests answered (services/admission.ts), by role and verdict, for
// orgwatch_admission_requests_total. Roles are capped by the service before they get here.
import type { Verdict } from "../logic/admission.js";

export class AdmissionsModel {
  private readonly counts = new Map<string, { role: string; verdict: Verdict | "error"; count: number }>();

  count(role: string, verdict: Verdict | "error"): void {
    const key = `${role}\u0000${verdict}`;
    let entry = this.counts.get(key);
    if (!entry) this.counts.set(key, (entry = { role, verdict, count: 0 }));
    entry.count++;
  }

  all(): IterableIterator<{ role: string; verdict: Verdict | "error"; count: number }> {
    return this.counts.values();
  }
}

// Setup findings (orgwatch check), re-evaluated by the daemon after each poll
// (sources/findings.ts) and exported as orgwatch_config_findings.
import type { Finding } from "../logic/checks.js";

export class FindingsModel {
  /** The findings of the last evaluation, sorted (errors first); empty before the first poll. */
  current: readonly Finding[] = [];
  /** When they were evaluated (epoch ms); undefined before the first poll. */
  evaluatedAtMs: number | undefined;

  set(findings: readonly Finding[], atMs: number): void {
    this.current = findings;
    this.evaluatedAtMs = atMs;
  }
}

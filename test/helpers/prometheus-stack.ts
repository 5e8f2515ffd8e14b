// Real Prometheus and Alertmanager child processes for end-to-end tests (started as the demo's
// stack starts them), and the Prometheus HTTP API calls the tests make.
export {
  findBinary,
  startAlertmanager,
  startPrometheus,
  type ManagedProcess,
} from "../../src/demo/processes.js";

export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

interface PromResponse<T> {
  status: "success" | "error";
  data: T;
  error?: string;
  errorType?: string;
}

/** GET a Prometheus API path; returns the parsed body whatever the HTTP status (errors come as 400/422). */
export async function promApi<T>(baseUrl: string, path: string, params: Record<string, string> = {}) {
  const query = new URLSearchParams(params).toString();
  const res = await fetch(`${baseUrl}${path}${query ? "?" + query : ""}`);
  return (await res.json()) as PromResponse<T>;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing";
  value: string;
}

export async function prometheusAlerts(baseUrl: string): Promise<PromAlert[]> {
  const body = await promApi<{ alerts: PromAlert[] }>(baseUrl, "/api/v1/alerts");
  if (body.status !== "success") throw new Error(`GET /api/v1/alerts: ${body.error}`);
  return body.data.alerts;
}

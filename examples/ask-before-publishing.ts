// An agent asks orgwatch before it gives another agent a task (the reference organization's
// "check pending message count before publishing"), and publishes only on "accept".
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";

export async function assignIfAdmitted(nc: NatsConnection, role: string, task: object): Promise<string> {
  const reply = await nc.request(
    "genbrain.orgwatch.admission",
    JSON.stringify({ role, tasks: 1, complete_within_minutes: 60 }),
    { timeout: 2_000 },
  );
  if (reply.headers?.get("Nats-Service-Error")) throw new Error(reply.headers.get("Nats-Service-Error"));
  const answer = reply.json<{ verdict: "accept" | "defer" | "reject"; reason: string }>();
  if (answer.verdict === "accept")
    await jetstream(nc).publish(`genbrain.agents.${role}.tasks`, JSON.stringify(task));
  return `${answer.verdict}: ${answer.reason}`;
}

// Pure classification of JetStream streams and consumers into the organization's vocabulary:
// what kind of traffic a subject carries and which agent role it belongs to.

export const KINDS = ["tasks", "inbox", "broadcasts", "deadletter", "other"] as const;
export type Kind = (typeof KINDS)[number];

export interface Classification {
  readonly kind: Kind;
  /** The agent role, "" when none or when the subject spans several roles (a `*` token). */
  readonly role: string;
}

const OTHER: Classification = { kind: "other", role: "" };

/** Roles become label values: keep them to the characters a subject token and a dashboard can carry. */
const ROLE_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidRole(role: string): boolean {
  return ROLE_TOKEN.test(role);
}

/**
 * Classifies one subject or subject filter. `{prefix}.agents.{role}.tasks` → tasks of `role`;
 * `{prefix}.agents.*.tasks` → tasks with role "" (the role then comes from each message or filter).
 */
export function classifySubject(prefix: string, subject: string): Classification {
  if (!subject.startsWith(prefix + ".")) return OTHER;
  const tokens = subject.slice(prefix.length + 1).split(".");
  if (tokens.length === 2 && tokens[0] === "org") {
    if (tokens[1] === "broadcasts") return { kind: "broadcasts", role: "" };
    if (tokens[1] === "deadletter") return { kind: "deadletter", role: "" };
    return OTHER;
  }
  if (tokens.length === 3 && tokens[0] === "agents") {
    const [, role, leaf] = tokens as [string, string, string];
    if (leaf !== "tasks" && leaf !== "inbox") return OTHER;
    if (role === "*") return { kind: leaf, role: "" };
    if (!isValidRole(role)) return OTHER;
    return { kind: leaf, role };
  }
  return OTHER;
}

/** A stream's kind is the kind all its subjects share (else `other`); likewise its role. */
export function classifyStream(prefix: string, subjects: readonly string[]): Classification {
  if (subjects.length === 0) return OTHER;
  const each = subjects.map((s) => classifySubject(prefix, s));
  const kind = each.every((c) => c.kind === each[0]!.kind) ? each[0]!.kind : "other";
  const role = each.every((c) => c.role === each[0]!.role) ? each[0]!.role : "";
  return { kind, role };
}

/**
 * A consumer's filter subject(s) refine its stream's classification. On the broadcasts stream every
 * agent has its own consumer, so the role comes from the consumer's name through `rolePattern`
 * (first capture group; default: the name up to its first `-`, `_` or `.`).
 */
export function classifyConsumer(
  prefix: string,
  stream: Classification,
  consumerName: string,
  filterSubjects: readonly string[],
  rolePattern: RegExp,
): Classification {
  let result = stream;
  if (filterSubjects.length > 0) {
    const byFilter = classifyStream(prefix, filterSubjects);
    if (byFilter.kind !== "other") result = { kind: byFilter.kind, role: byFilter.role || stream.role };
  }
  if (result.kind === "broadcasts" && result.role === "") {
    const m = rolePattern.exec(consumerName);
    const role = m?.[1] ?? "";
    result = { kind: "broadcasts", role: isValidRole(role) ? role : "" };
  }
  return result;
}

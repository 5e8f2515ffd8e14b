// What status and event parsing share: the size limit, the JSON decoding, the fixed vocabulary of
// reasons a message is refused for (they become the `reason` label of
// orgwatch_invalid_messages_total, so never anything taken from the message), and timestamps.

/** Status and event messages are a few hundred bytes; anything this big is a mistake or an attack. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

export const INVALID_REASONS = [
  "oversize",
  "invalid_json",
  "not_object",
  "missing_field",
  "wrong_type",
  "unknown_state",
  "bad_timestamp",
  "bad_role",
  "bad_usage",
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: InvalidReason };

export function invalid(reason: InvalidReason): { ok: false; reason: InvalidReason } {
  return { ok: false, reason };
}

const decoder = new TextDecoder();

/** Bytes (at most `maxBytes` of them) → a JSON object, or the reason it is not one. Never throws. */
export function parseJsonObject(
  data: Uint8Array,
  maxBytes: number = MAX_MESSAGE_BYTES,
): Parsed<Record<string, unknown>> {
  if (data.length > maxBytes) return invalid("oversize");
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return invalid("invalid_json");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return invalid("not_object");
  return { ok: true, value: value as Record<string, unknown> };
}

/** Epoch numbers below this are seconds, above it milliseconds (1e11 s is the year 5138, 1e11 ms 1973). */
const SECONDS_BELOW = 1e11;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}/;

/**
 * An optional `ts` field: epoch seconds or milliseconds (number) or an RFC 3339 string.
 * Absent or null → undefined; anything else unusable → a reason.
 */
export function parseTimestamp(value: unknown): Parsed<number | undefined> {
  if (value === undefined || value === null) return { ok: true, value: undefined };
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value <= 0) return invalid("bad_timestamp");
    return { ok: true, value: value < SECONDS_BELOW ? value * 1000 : value };
  }
  if (typeof value === "string") {
    const ms = RFC3339.test(value) ? Date.parse(value) : NaN;
    return Number.isFinite(ms) && ms > 0 ? { ok: true, value: ms } : invalid("bad_timestamp");
  }
  return invalid("wrong_type");
}

/** An optional string field: absent or null → undefined; a string → itself; anything else → wrong_type. */
export function optionalString(value: unknown): Parsed<string | undefined> {
  if (value === undefined || value === null) return { ok: true, value: undefined };
  return typeof value === "string" ? { ok: true, value } : invalid("wrong_type");
}

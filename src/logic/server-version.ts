// What a nats-server version does that orgwatch must compensate for (shared/reference/
// jetstream-removal.md). Versions as the server reports them in INFO ("2.9.10", "2.12.9-beta").

/** [major, minor, patch] of a version string; undefined when it is not one. */
export function parseVersion(version: string | undefined): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function atLeast(v: [number, number, number], major: number, minor: number, patch: number): boolean {
  if (v[0] !== major) return v[0] > major;
  if (v[1] !== minor) return v[1] > minor;
  return v[2] >= patch;
}

/**
 * A message that exhausted max-deliver keeps its redelivered entry (num_redelivered stays counted)
 * up to 2.12.8 and in 2.14.0; 2.12.9 and 2.14.1 drop it. Unknown versions: assumed to keep it only
 * when older than 2.12.9 could be (nothing known: false, so that nothing is subtracted twice).
 */
export function keepsDeadRedeliveredEntry(version: string | undefined): boolean {
  const v = parseVersion(version);
  if (!v) return false;
  if (v[0] === 2 && v[1] === 14) return v[2] === 0;
  return !atLeast(v, 2, 12, 9);
}

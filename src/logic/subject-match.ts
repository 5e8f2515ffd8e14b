// NATS subject filters: `*` matches one token, a final `>` one or more.

export function subjectMatches(filter: string, subject: string): boolean {
  // Most filters are literal (one subject per consumer): no tokens to compare. Called per consumer
  // and stream subject on every poll, so the split is spared where it can be.
  if (filter === subject) return true;
  if (!filter.includes("*") && !filter.includes(">")) return false;
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return i === f.length - 1 && s.length > i;
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

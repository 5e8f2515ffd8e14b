// The process tree under a child, from /proc: what a test checks is gone after Ctrl-C.
import { readdirSync, readFileSync } from "node:fs";

/** Every process descended from `root`, from /proc (ppid is the 4th field of /proc/PID/stat). */
export function descendants(root: number): { pid: number; cmdline: string }[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // Gone meanwhile.
    }
  }
  const found: { pid: number; cmdline: string }[] = [];
  const visit = (pid: number) => {
    for (const [child, ppid] of parent) {
      if (ppid !== pid) continue;
      let cmdline = "";
      try {
        cmdline = readFileSync(`/proc/${child}/cmdline`, "utf8").replace(/\0/g, " ");
      } catch {
        // Gone meanwhile.
      }
      found.push({ pid: child, cmdline });
      visit(child);
    }
  };
  visit(root);
  return found;
}

export function alive(pid: number): boolean {
  try {
    // A zombie still has a /proc entry; its state is Z.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// A full garbage collection on demand, for measurements that must not pay for the garbage of what
// ran before them. The flag is set when a benchmark asks, not when a file of bench/ is imported.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export function fullCollector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

// A child process for the heap-growth test: the daemon's allocation pattern in miniature. It keeps a
// steady model (many small objects, like the consumers' state) and, round after round, builds and
// drops a large render (like one /metrics text), then prints the peak heap V8 reserved, in MB.
// Usage: node --import tsx test/helpers/heap-churn.ts <percent>
import { applyHeapGrowth } from "../../src/heap-growth.js";

applyHeapGrowth(Number(process.argv[2]));

interface Entry {
  name: string;
  values: number[];
}
const model: Entry[] = [];
for (let i = 0; i < 300_000; i++) model.push({ name: `consumer-${i}`, values: [i, i + 1, i + 2] });

let peak = 0;
for (let round = 0; round < 30; round++) {
  // The round's render is garbage as soon as the round ends.
  const render: string[] = [];
  for (let i = 0; i < 200_000; i++) render.push(`series{consumer="consumer-${i}",round="${round}"} ${i}`);
  peak = Math.max(peak, process.memoryUsage().heapTotal);
}
// The model must outlive the rounds, or V8 could collect it.
if (model.length !== 300_000) throw new Error("model lost");
process.stdout.write(JSON.stringify({ peakHeapMb: peak / 1024 / 1024 }) + "\n");

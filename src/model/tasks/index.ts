// Tasks and on_complete chains: the lifecycle (lifecycle.ts), chain linking (chain-links.ts), the
// store persistence reads (store.ts) and the records they share (records.ts).
export * from "./records.js";
export { TasksModel } from "./lifecycle.js";

import { startNatsServer } from "../src/nats/server-process.js";
import { measureIngest, INGEST_SERVER_CONFIG } from "./ingest.js";
const s = await startNatsServer({ config: INGEST_SERVER_CONFIG });
console.log(JSON.stringify(await measureIngest(s.url, { messages: 400000, mode: "drain" }), null, 1));
console.log(JSON.stringify(await measureIngest(s.url, { messages: 400000, mode: "live" }), null, 1));
await s.stop();

import { startNatsServer, freePort } from "./src/nats/server-process.js";
import { spawnOrgwatch } from "./test/helpers/cli.js";
const server = await startNatsServer();
for (let i = 0; i < 2; i++) {
const port = await freePort();
const t0 = Date.now();
const child = spawnOrgwatch(["--nats-url", server.url, "--web.listen-address", `127.0.0.1:${port}`, "--poll-interval", "1s", "--log.level", "warn"]);
for (;;) { try { if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break; } catch {} await new Promise(r => setTimeout(r, 50)); }
console.log("ready after", Date.now() - t0);
child.kill("SIGKILL");
}
await server.stop();

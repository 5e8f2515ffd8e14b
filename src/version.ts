import { createRequire } from "node:module";

// Read from package.json so `--version` and orgwatch_build_info never disagree with the release.
const require = createRequire(import.meta.url);
export const VERSION: string = (require("../package.json") as { version: string }).version;

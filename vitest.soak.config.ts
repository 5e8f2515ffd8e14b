import { defineConfig } from "vitest/config";

// `npm run test:soak`: long runs that report resident memory over time (not in CI; minutes each).
// SOAK_MINUTES sets the length (default 5).
export default defineConfig({
  test: {
    include: ["test/soak/**/*.soak.ts"],
    testTimeout: 24 * 3600_000,
    hookTimeout: 120_000,
    pool: "forks",
    reporters: ["default"],
  },
});

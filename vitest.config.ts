import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // Some unit tests spawn the CLI or gen-schemas (~2 s of CPU each); in CI they share two
        // cores with the lab and fault suites, where vitest's default 5 s budget timed them out.
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 30_000 },
      },
      {
        // Lab tests build network namespaces and start real peers; they run one file at a time so
        // two labs never compete for the machine's two cores.
        test: {
          name: "lab",
          include: ["test/lab/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The attack suite (test/security/): attacks on the real services in the lab; one file at a
        // time, and after the lab and fault suites (groupOrder 1) so three labs never share the
        // two cores at once.
        test: {
          name: "security",
          sequence: { groupOrder: 1 },
          include: ["test/security/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 240_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The fault suite (test/fault/): the real service against broker outages, kill -9, disk
        // full…; long rows, one file at a time. NETPROBE_FAULT_LONG=1 runs the full durations.
        test: {
          name: "fault",
          include: ["test/fault/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 1_200_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});

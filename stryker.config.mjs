// Mutation testing (issue 18). Stryker runs on Node; its "command" runner reruns the command
// below once per mutant, so each group names only the fast unit-level test files that cover its
// modules. Pick a group with MUTATE_GROUP (tools/mutate.ts runs them all: `bun run mutate`).
import { groups } from "./tools/mutate-groups.mjs";

const name = process.env.MUTATE_GROUP ?? "codec";
const group = groups[name];
if (!group) throw new Error(`unknown MUTATE_GROUP ${name}; one of ${Object.keys(groups).join(", ")}`);

export default {
  testRunner: "command",
  // MUTATE_TESTS (space-separated files) overrides the group's tests, e.g. to measure a "before" score.
  commandRunner: { command: `bun test --timeout 10000 ${process.env.MUTATE_TESTS ?? group.tests.join(" ")}` },
  mutate: process.env.MUTATE_FILES ? process.env.MUTATE_FILES.split(" ") : group.mutate, // MUTATE_FILES: a subset
  // The sandbox needs only what the tests import.
  ignorePatterns: ["bench", "docs", "infra", "test/interop", "test/artifacts", "reports", ".azhexgate", "*.sqlite*"],
  coverageAnalysis: "off",
  concurrency: Number(process.env.MUTATE_CONCURRENCY ?? 2),
  // A mutant that loops is stopped after the dry run's time × 1.5 + 5 s and counts as killed (Timeout).
  timeoutMS: Number(process.env.MUTATE_TIMEOUT_MS ?? 5000),
  timeoutFactor: 1.5,
  reporters: ["clear-text", "json", "progress"],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  tempDirName: `.stryker-tmp/${name}`,
  cleanTempDir: true,
  thresholds: { high: 90, low: 85, break: group.floor ?? null },
};

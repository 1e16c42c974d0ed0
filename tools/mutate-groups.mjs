// Module groups for mutation testing: the modules mutated and the fast test files that cover them.
// `floor`: the score below which `stryker run` fails (used by the CI sample).
export const groups = {
  codec: {
    mutate: ["src/tunnel/frame.ts"],
    tests: ["test/tunnel-frame.test.ts", "test/tunnel-varint.test.ts"],
  },
  // The head codecs: ~650 mutants at ~2.4 s a run (the golden vectors) — about 15 min on 2 cores.
  heads: {
    mutate: ["src/tunnel/head.ts", "src/tunnel/head-binary.ts"],
    tests: ["test/tunnel-frame.test.ts", "test/tunnel-v2-vectors.test.ts"],
  },
  session: {
    mutate: ["src/tunnel/stream.ts", "src/tunnel/credit.ts"], // session.ts: add when time allows (not measured yet)
    tests: ["test/tunnel-session.test.ts", "test/tunnel-v2-session.test.ts", "test/tunnel-v2-flow.test.ts", "test/tunnel-ws-stream.test.ts"],
  },
  hc: {
    mutate: ["src/hc/sas.ts", "src/hc/address.ts", "src/hc/messages.ts"],
    tests: ["test/sas.test.ts", "test/address.test.ts", "test/hc-messages.test.ts", "test/hc-edges.test.ts"],
    floor: 85, // CI sample (.ci/run)
  },
  routing: {
    mutate: ["src/gateway/routing.ts:11-12", "src/gateway/routing.ts:34-47"],
    tests: ["test/route-host.test.ts"],
    floor: 85, // CI sample (.ci/run)
  },
  agent: {
    mutate: ["src/agent/policy.ts", "src/agent/backoff.ts", "src/agent/supervisor.ts"],
    tests: ["test/backoff.test.ts", "test/supervisor.test.ts", "test/supervisor-attempt.test.ts", "test/supervisor-clock.test.ts", "test/agent-policy.test.ts"],
  },
  api: {
    mutate: ["src/api/keys.ts"],
    tests: ["test/api-keys.test.ts", "test/api-keys-refresh.test.ts", "test/api-keys-sources.test.ts", "test/api-keyvault-errors.test.ts"],
  },
  // The management API's network rules: the tables run in ~50 ms; api-access.test.ts adds the HTTP view.
  "api-access": {
    mutate: ["src/api/access.ts"],
    tests: ["test/api-access-table.test.ts", "test/api-access.test.ts"],
  },
  // The tunnel service (business rules under the management API), without HTTP: ~0.1 s a run.
  "api-tunnels": {
    mutate: ["src/api/tunnels.ts"],
    tests: ["test/api-tunnels-unit.test.ts"],
  },
  // The agent's HTTP/1.1 response parser: the Exchange class and its helpers (lines 126-441 of
  // origin-conn.ts — move the range when the file changes), fed bytes by test/origin-parse.test.ts
  // (~0.2 s a run; test/origin-http.test.ts needs real sockets, ~10 s).
  "origin-parse": {
    mutate: ["src/agent/origin-conn.ts:126-441"],
    tests: ["test/origin-parse.test.ts"],
  },
};

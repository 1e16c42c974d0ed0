// Module groups for mutation testing: the modules mutated and the fast test files that cover them.
// `floor`: the score below which `stryker run` fails (used by the CI sample).
export const groups = {
  codec: {
    mutate: ["src/tunnel/frame.ts"],
    tests: ["test/tunnel-frame.test.ts", "test/tunnel-varint.test.ts"],
  },
  // The hello and the v1 JSON heads (fast tables).
  heads: {
    mutate: ["src/tunnel/head.ts"],
    tests: ["test/tunnel-head-mutants.test.ts", "test/tunnel-frame.test.ts"],
  },
  // The v2 binary heads: every run replays the golden vectors and their properties (~2.4 s).
  "heads-binary": {
    mutate: ["src/tunnel/head-binary.ts"],
    tests: ["test/tunnel-v2-vectors.test.ts", "test/tunnel-head-binary-mutants.test.ts"],
  },
  // The tunnel core (split so each group runs in a few minutes; a third of the stream mutants stall
  // a stream and cost a timeout, so these files must stay fast).
  stream: {
    mutate: ["src/tunnel/stream.ts"],
    tests: ["test/tunnel-stream-mutants.test.ts", "test/tunnel-stream-inbound-mutants.test.ts", "test/tunnel-stream-writenow.test.ts", "test/tunnel-session.test.ts", "test/tunnel-v2-session.test.ts", "test/tunnel-ws-stream.test.ts", "test/tunnel-v2-flow.test.ts"],
  },
  // Session credit, liveness, frame dispatch to a stream, the inbound body queue.
  credit: {
    mutate: ["src/tunnel/credit.ts", "src/tunnel/liveness.ts", "src/tunnel/deliver.ts", "src/tunnel/inbound.ts"],
    tests: ["test/tunnel-credit-growth.test.ts", "test/tunnel-credit-liveness.test.ts", "test/tunnel-min-rtt.test.ts", "test/tunnel-stream-mutants.test.ts", "test/tunnel-stream-inbound-mutants.test.ts", "test/tunnel-session.test.ts", "test/tunnel-v2-session.test.ts", "test/tunnel-v2-flow.test.ts"],
  },
  // Receive-window growth and the process budget: pure tables (~0.1 s a run).
  window: {
    mutate: ["src/tunnel/window.ts"],
    tests: ["test/tunnel-window.test.ts"],
  },
  session: {
    mutate: ["src/tunnel/session.ts", "src/tunnel/outbox.ts"],
    tests: ["test/tunnel-session-mutants.test.ts", "test/tunnel-session.test.ts", "test/tunnel-v2-session.test.ts", "test/tunnel-v2-flow.test.ts", "test/tunnel-credit-liveness.test.ts"],
  },
  // The pool; the lifecycle file (token retirement, re-warm) waits on real timers: ~2 s a run.
  pool: {
    mutate: ["src/tunnel/pool.ts"],
    tests: ["test/tunnel-pool.test.ts", "test/tunnel-pool-lifecycle.test.ts"],
  },
  hc: {
    mutate: ["src/hc/sas.ts", "src/hc/address.ts", "src/hc/messages.ts"],
    tests: ["test/sas.test.ts", "test/address.test.ts", "test/hc-messages.test.ts", "test/hc-edges.test.ts"],
    floor: 85, // CI sample (.ci/run)
  },
  routing: {
    mutate: ["src/gateway/routing.ts:11-12", "src/gateway/routing.ts:34-72"], // the patterns, routeHost + its memo, route (move the ranges when the file changes)
    tests: ["test/route-host.test.ts"],
    floor: 85, // CI sample (.ci/run)
  },
  agent: {
    mutate: ["src/agent/policy.ts", "src/agent/backoff.ts"],
    tests: ["test/backoff.test.ts", "test/agent-policy.test.ts", "test/supervisor.test.ts"],
  },
  // The supervisor alone, so its score is reported per file: ~3 s a run against a real relay
  // emulator on a manual clock; a third of its mutants stall a phase and cost a timeout (~12 min).
  supervisor: {
    mutate: ["src/agent/supervisor.ts"],
    tests: ["test/supervisor.test.ts", "test/supervisor-attempt.test.ts", "test/supervisor-clock.test.ts", "test/supervisor-clock-channel.test.ts", "test/supervisor-mutants.test.ts"],
  },
  api: {
    mutate: ["src/api/keys.ts"],
    tests: ["test/api-keys.test.ts", "test/api-keys-refresh.test.ts", "test/api-keys-sources.test.ts", "test/api-keyvault-errors.test.ts"],
  },
  // The management API's network rules: the tables run in ~50 ms; api-access.test.ts adds the HTTP view.
  "api-access": {
    mutate: ["src/api/access.ts", "src/net/cidr.ts"],
    tests: ["test/api-access-table.test.ts", "test/api-access.test.ts"],
  },
  // The tunnel service (business rules under the management API), without HTTP: ~0.1 s a run.
  "api-tunnels": {
    mutate: ["src/api/tunnels.ts"],
    tests: ["test/api-tunnels-unit.test.ts", "test/api-tunnels-lifecycle.test.ts"],
  },
  // The agent's HTTP/1.1 response parser: the Exchange class and its helpers
  // src/agent/origin-exchange.ts + origin-head.ts), fed bytes by test/origin-parse.test.ts
  // (~0.2 s a run; test/origin-http-*.test.ts need real sockets, ~10 s).
  "origin-parse": {
    mutate: ["src/agent/origin-exchange.ts", "src/agent/origin-head.ts"],
    tests: ["test/origin-parse.test.ts", "test/origin-parse-conn.test.ts", "test/origin-head.test.ts"],
  },
};

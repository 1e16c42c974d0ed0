/**
 * `azhexgate tcp --port 5432` — shares a local TCP service (a database, sshd, Redis…) through a
 * TCP tunnel (issue 16): registered with the management API (kind tcp), served under the same
 * supervisor as `start`; others reach it with `azhexgate connect NAME`. Flags only; the work is
 * src/agent/start.ts with a TCP target.
 */
import { defineCommand } from "citty";
import { allValues, strictFlags, usageExit } from "./_args.ts";

const args = {
  port: { type: "string", description: "Port of the TCP service to share, e.g. 5432", valueHint: "n" },
  host: { type: "string", description: "Host of the TCP service (default localhost)", valueHint: "host" },
  name: { type: "string", description: "Reserved name to claim (owned by your API key or user), e.g. team-db; default a random id", valueHint: "name" },
  allow: { type: "string", description: "A key id or user id (besides you and admins) that may connect (repeatable; see azhexgate whoami)", valueHint: "id" },
  "api-url": { type: "string", description: "Management API of the gateway [AZHEXGATE_API_URL] (required)", valueHint: "url" },
  "api-key": { type: "string", description: "API key for --api-url [AZHEXGATE_API_KEY] (prefer the environment variable)", valueHint: "key" },
  json: { type: "boolean", description: "One JSON event per line on stdout (ready with the tunnel's name, state, error)" },
  "log-level": { type: "string", description: "silent, error, warn, info or debug (default warn)", valueHint: "level" },
  "exit-on-fail": { type: "boolean", description: "Also exit (code 1) on permanent relay failures instead of retrying" },
  grace: { type: "string", description: "Seconds open connections may finish after Ctrl+C (default 10)", valueHint: "s" },
  proxy: { type: "string", description: "HTTP proxy for the relay and the management API [HTTPS_PROXY / HTTP_PROXY, NO_PROXY]", valueHint: "url" },
} as const;

export default defineCommand({
  meta: { name: "tcp", description: "Share a local TCP service through a tunnel; others reach it with azhexgate connect" },
  args,
  async run({ rawArgs }) {
    strictFlags("tcp", rawArgs, args);
    const { resolveStartConfig } = await import("../agent/start-config.ts");
    let cfg;
    try {
      cfg = await resolveStartConfig(rawArgs, allValues, process.env, process.cwd(), [], "tcp");
    } catch (err) {
      usageExit("tcp", (err as Error).message);
    }
    const { runToExit } = await import("./start.ts");
    await runToExit(cfg);
  },
});

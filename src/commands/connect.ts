/**
 * `azhexgate connect NAME --port 15432` (or `--stdio`) — reaches a TCP tunnel shared with
 * `azhexgate tcp` (issue 16). Flags only; the work is src/agent/connect.ts.
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const args = {
  name: { type: "positional", required: false, description: "The TCP tunnel's name (what azhexgate tcp printed)", valueHint: "name" },
  port: { type: "string", description: "Local port to listen on (0 = any free port, printed)", valueHint: "n" },
  host: { type: "string", description: "Local address to listen on (default 127.0.0.1)", valueHint: "host" },
  stdio: { type: "boolean", description: "Bridge stdin / stdout instead of listening (for ssh -o ProxyCommand)" },
  "api-url": { type: "string", description: "Management API of the gateway [AZHEXGATE_API_URL]", valueHint: "url" },
  "api-key": { type: "string", description: "API key for --api-url [AZHEXGATE_API_KEY] (prefer the environment variable)", valueHint: "key" },
  json: { type: "boolean", description: "Print a JSON ready event (with the listening address) on stdout" },
} as const;

export default defineCommand({
  meta: { name: "connect", description: "Reach a TCP tunnel: a local port (or stdin / stdout) that leads to the shared service" },
  args,
  async run({ args: parsed, rawArgs }) {
    strictFlags("connect", rawArgs, args);
    const name = parsed._.map(String)[0] ?? "";
    if (!/^[a-z0-9-]{1,40}$/.test(name)) usageExit("connect", name ? `"${name}" is not a tunnel name (a-z, 0-9 and '-')` : "the tunnel's name is required: azhexgate connect NAME --port 15432 (or --stdio)");
    const stdio = parsed.stdio === true;
    const portFlag = parsed.port as string | undefined;
    if (stdio === (portFlag !== undefined)) usageExit("connect", "give exactly one of --port N (a local listener) or --stdio (stdin / stdout)");
    let port: number | undefined;
    if (portFlag !== undefined) {
      port = Number(portFlag);
      if (!/^\d+$/.test(portFlag) || port > 65535) usageExit("connect", `--port must be a whole number from 0 to 65535 (got "${portFlag}")`);
    }
    if (stdio && parsed.host !== undefined) usageExit("connect", "--host is for --port (the local listener's address)");
    const env = process.env;
    const apiUrl = (parsed["api-url"] as string | undefined) ?? env.AZHEXGATE_API_URL;
    const apiKey = (parsed["api-key"] as string | undefined) ?? env.AZHEXGATE_API_KEY;
    if (!apiUrl) usageExit("connect", "--api-url (or AZHEXGATE_API_URL) is required: the management API of the gateway the tunnel is on");
    const [{ createApiClient }, { getLogin, bearerFor }, { runConnect }] = await Promise.all([
      import("../agent/api-client.ts"),
      import("../agent/identity-cache.ts"),
      import("../agent/connect.ts"),
    ]);
    if (!apiKey && !getLogin(env, apiUrl)) usageExit("connect", `--api-url needs an API key or a sign-in: set AZHEXGATE_API_KEY (or --api-key), or run \`azhexgate login --api-url ${apiUrl}\``);
    const client = createApiClient({ apiUrl, apiKey, bearer: () => bearerFor(env, apiUrl) });
    const code = await runConnect({ name, port, host: (parsed.host as string | undefined) ?? "127.0.0.1", stdio, json: parsed.json === true }, client);
    await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((r) => s.write("", () => r()))));
    process.exit(code);
  },
});

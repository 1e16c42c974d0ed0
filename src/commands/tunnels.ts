/**
 * `azhexgate tunnels list|delete` — the caller's tunnels on a deployed gateway's management API
 * (AZHEXGATE_API_URL + AZHEXGATE_API_KEY, or --api-url / --api-key, or the identity of `azhexgate login`).
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const common = {
  "api-url": { type: "string", description: "Management API of the gateway [AZHEXGATE_API_URL]", valueHint: "url" },
  "api-key": { type: "string", description: "API key [AZHEXGATE_API_KEY] (prefer the environment variable)", valueHint: "key" },
  json: { type: "boolean", description: "Print JSON instead of a table" },
} as const;

async function client(cmd: string, rawArgs: string[], args: Record<string, unknown>, def: Record<string, unknown> = common) {
  strictFlags(`tunnels ${cmd}`, rawArgs, def as typeof common);
  const apiUrl = (args["api-url"] as string | undefined) ?? process.env.AZHEXGATE_API_URL;
  const apiKey = (args["api-key"] as string | undefined) ?? process.env.AZHEXGATE_API_KEY;
  if (!apiUrl) usageExit(`tunnels ${cmd}`, "needs the gateway's management API: set AZHEXGATE_API_URL (or --api-url)");
  const { getLogin, bearerFor } = await import("../agent/identity-cache.ts");
  if (!apiKey && !getLogin(process.env, apiUrl)) usageExit(`tunnels ${cmd}`, `needs an API key or a sign-in: set AZHEXGATE_API_KEY (or --api-key), or run \`azhexgate login --api-url ${apiUrl}\``);
  const { createApiClient } = await import("../agent/api-client.ts");
  return createApiClient({ apiUrl, apiKey, bearer: apiKey ? undefined : () => bearerFor(process.env, apiUrl) });
}

async function guarded(cmd: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    console.error(`azhexgate tunnels ${cmd}: ${(err as Error).message}`);
    process.exit(1);
  }
}

const listArgs = { ...common, all: { type: "boolean", description: "Every owner's tunnels (admins signed in with `azhexgate login`)" } } as const;

const list = defineCommand({
  meta: { name: "list", description: "List your tunnels" },
  args: listArgs,
  async run({ args, rawArgs }) {
    const c = await client("list", rawArgs, args, listArgs);
    await guarded("list", async () => {
      const tunnels = await c.list(args.all === true);
      if (args.json) return console.log(JSON.stringify(tunnels, null, 2));
      if (tunnels.length === 0) return console.log("no tunnels");
      console.log(["ID".padEnd(14), "PUBLIC URL".padEnd(44), "PORT".padEnd(6), "IDLE EXPIRY"].join(" "));
      for (const t of tunnels) {
        console.log([String(t.id).padEnd(14), (t.kind === "tcp" ? `tcp: azhexgate connect ${t.id}` : String(t.public_url)).padEnd(44), String(t.local_port ?? "-").padEnd(6), String(t.idle_expires_at), ...(t.owner ? [String(t.owner)] : [])].join(" "));
      }
    });
  },
});

const del = defineCommand({
  meta: { name: "delete", description: "Delete one of your tunnels: its public URL stops answering and its agent is disconnected and exits (unless started with --recreate)" },
  args: { id: { type: "positional", description: "Tunnel id (its subdomain)", required: true }, ...common },
  async run({ args, rawArgs }) {
    const c = await client("delete", rawArgs, args);
    await guarded("delete", async () => {
      await c.remove(args.id);
      console.log(`deleted ${args.id}`);
    });
  },
});

export default defineCommand({
  meta: { name: "tunnels", description: "List or delete your tunnels on a deployed gateway" },
  subCommands: { list, delete: del },
});

/**
 * `azhexgate tunnels list|delete` — the caller's tunnels on a deployed gateway's management API
 * (AZHEXGATE_API_URL + AZHEXGATE_API_KEY, or --api-url / --api-key).
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const common = {
  "api-url": { type: "string", description: "Management API of the gateway [AZHEXGATE_API_URL]", valueHint: "url" },
  "api-key": { type: "string", description: "API key [AZHEXGATE_API_KEY] (prefer the environment variable)", valueHint: "key" },
  json: { type: "boolean", description: "Print JSON instead of a table" },
} as const;

async function client(cmd: string, rawArgs: string[], args: Record<string, unknown>) {
  strictFlags(`tunnels ${cmd}`, rawArgs, common);
  const apiUrl = (args["api-url"] as string | undefined) ?? process.env.AZHEXGATE_API_URL;
  const apiKey = (args["api-key"] as string | undefined) ?? process.env.AZHEXGATE_API_KEY;
  if (!apiUrl) usageExit(`tunnels ${cmd}`, "needs the gateway's management API: set AZHEXGATE_API_URL (or --api-url)");
  if (!apiKey) usageExit(`tunnels ${cmd}`, "needs an API key: set AZHEXGATE_API_KEY (or --api-key)");
  const { createApiClient } = await import("../agent/api-client.ts");
  return createApiClient({ apiUrl, apiKey });
}

async function guarded(cmd: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    console.error(`azhexgate tunnels ${cmd}: ${(err as Error).message}`);
    process.exit(1);
  }
}

const list = defineCommand({
  meta: { name: "list", description: "List your tunnels" },
  args: common,
  async run({ args, rawArgs }) {
    const c = await client("list", rawArgs, args);
    await guarded("list", async () => {
      const tunnels = await c.list();
      if (args.json) return console.log(JSON.stringify(tunnels, null, 2));
      if (tunnels.length === 0) return console.log("no tunnels");
      console.log(["ID".padEnd(14), "PUBLIC URL".padEnd(44), "PORT".padEnd(6), "IDLE EXPIRY"].join(" "));
      for (const t of tunnels) {
        console.log([String(t.id).padEnd(14), String(t.public_url).padEnd(44), String(t.local_port ?? "-").padEnd(6), String(t.idle_expires_at)].join(" "));
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

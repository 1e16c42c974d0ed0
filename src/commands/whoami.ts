/** `azhexgate whoami [--api-url URL]` — who you are signed in as (the token is refreshed if needed; never printed). */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const args = {
  "api-url": { type: "string", description: "The gateway [AZHEXGATE_API_URL]", valueHint: "url" },
  json: { type: "boolean", description: "One JSON object" },
} as const;

export default defineCommand({
  meta: { name: "whoami", description: "Show who you are signed in as" },
  args,
  async run({ args: a, rawArgs }) {
    strictFlags("whoami", rawArgs, args);
    const apiUrl = a["api-url"] ?? process.env.AZHEXGATE_API_URL;
    if (!apiUrl) usageExit("whoami", "--api-url (or AZHEXGATE_API_URL) is required");
    const { bearerFor, getLogin, userOf } = await import("../agent/identity-cache.ts");
    try {
      const token = await bearerFor(process.env, apiUrl);
      const login = getLogin(process.env, apiUrl)!;
      const u = userOf(token);
      if (a.json) console.log(JSON.stringify({ gateway: apiUrl, issuer: login.issuer, name: u.name ?? null, email: u.email ?? null, oid: u.oid ?? null, tenant: u.tid ?? null, expires_at: new Date(login.expires_at).toISOString() }));
      else console.log(`${u.name ? `${u.name} ` : ""}<${u.email ?? u.oid ?? "unknown"}> signed in to ${apiUrl} (issuer ${login.issuer}${u.tid ? `, tenant ${u.tid}` : ""})`);
    } catch (e) {
      console.error(`azhexgate whoami: ${(e as Error).message}`);
      process.exit(3);
    }
  },
});

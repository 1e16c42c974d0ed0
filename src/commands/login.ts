/**
 * `azhexgate login [--api-url URL]` — signs in to a gateway's identity provider with the device
 * code flow (works over SSH and in containers): asks the gateway how (GET /api/auth), prints the
 * URL and code, waits for the browser step, caches the tokens (0600) for `start` and `tunnels`.
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const args = {
  "api-url": { type: "string", description: "Management API of the gateway [AZHEXGATE_API_URL]", valueHint: "url" },
  json: { type: "boolean", description: "Print JSON lines (the code to enter, then the signed-in user) instead of text" },
  browser: { type: "boolean", description: "Sign in in a browser on this machine (code + PKCE, loopback redirect) instead of by device code" },
  open: { type: "boolean", description: "With --browser: open the browser (default; --no-open only prints the URL)", default: true },
} as const;

export default defineCommand({
  meta: { name: "login", description: "Sign in to a gateway with your Entra ID (or OIDC) account, by device code" },
  args,
  async run({ args: a, rawArgs }) {
    strictFlags("login", rawArgs, args);
    const apiUrl = a["api-url"] ?? process.env.AZHEXGATE_API_URL;
    if (!apiUrl) usageExit("login", "--api-url (or AZHEXGATE_API_URL) is required: the management API of the gateway to sign in to");
    const { runLogin } = await import("../agent/login.ts");
    process.exit(await runLogin(apiUrl, { json: a.json === true, env: process.env, browser: a.browser === true, open: a.open !== false }));
  },
});

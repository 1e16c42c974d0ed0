/** `azhexgate logout [--api-url URL | --all]` — forgets the cached sign-in (tokens removed from the cache file). */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const args = {
  "api-url": { type: "string", description: "The gateway to sign out of [AZHEXGATE_API_URL]", valueHint: "url" },
  all: { type: "boolean", description: "Sign out of every gateway" },
} as const;

export default defineCommand({
  meta: { name: "logout", description: "Forget your cached sign-in" },
  args,
  async run({ args: a, rawArgs }) {
    strictFlags("logout", rawArgs, args);
    const apiUrl = a.all ? undefined : (a["api-url"] ?? process.env.AZHEXGATE_API_URL);
    if (!a.all && !apiUrl) usageExit("logout", "--api-url (or AZHEXGATE_API_URL) or --all is required");
    const { removeLogin, cachePath } = await import("../agent/identity-cache.ts");
    const removed = removeLogin(process.env, apiUrl);
    console.log(removed ? `Signed out${apiUrl ? ` of ${apiUrl}` : " of every gateway"} (${cachePath(process.env)}).` : "You were not signed in.");
  },
});

/**
 * `azhexgate doctor --api-url URL [--api-key KEY]` — checks a deployed gateway from the outside,
 * in order (DNS, TLS, /healthz, /readyz, API key, a real tunnel round trip) and says how to fix
 * each failure. Flags only; the checks live in src/doctor/. Exit 0: no check failed; 1: a check
 * failed; 2: bad flags.
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const args = {
  "api-url": { type: "string", description: "Management API of the gateway, e.g. https://api.example.com [AZHEXGATE_API_URL]", valueHint: "url" },
  "api-key": { type: "string", description: "API key [AZHEXGATE_API_KEY] (prefer the environment variable); without it the key and tunnel checks are skipped", valueHint: "key" },
  json: { type: "boolean", description: "One JSON object per line: one per check, then a summary" },
  timeout: { type: "string", description: "Seconds each network step may take (default 10)", valueHint: "s" },
  ca: { type: "string", description: "PEM file of extra CA certificates to trust (a private CA or a test certificate)", valueHint: "file" },
} as const;

export default defineCommand({
  meta: { name: "doctor", description: "Check a gateway deployment: DNS, TLS, health, API key and a tunnel round trip" },
  args,
  async run({ args: a, rawArgs }) {
    strictFlags("doctor", rawArgs, args);
    const apiUrl = (a["api-url"] as string | undefined) ?? process.env.AZHEXGATE_API_URL;
    const apiKey = (a["api-key"] as string | undefined) ?? process.env.AZHEXGATE_API_KEY;
    if (!apiUrl) usageExit("doctor", "needs the gateway's management API: --api-url https://api.example.com (or AZHEXGATE_API_URL)");
    let timeoutMs = 10_000;
    if (a.timeout !== undefined) {
      const s = Number(a.timeout);
      if (!Number.isFinite(s) || s <= 0 || s > 600) usageExit("doctor", `--timeout must be a number of seconds from 0.1 to 600 (got "${a.timeout}")`);
      timeoutMs = Math.round(s * 1000);
    }
    let ca: string | undefined;
    if (a.ca !== undefined) {
      const file = Bun.file(a.ca as string);
      ca = (await file.exists()) ? await file.text().catch(() => undefined) : undefined;
      if (ca === undefined) usageExit("doctor", `cannot read the --ca file "${a.ca}"`);
      if (!ca.includes("-----BEGIN CERTIFICATE-----")) usageExit("doctor", `--ca "${a.ca}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
    const { parseTarget, TargetError } = await import("../doctor/target.ts");
    let target;
    try {
      target = parseTarget(apiUrl);
    } catch (err) {
      if (err instanceof TargetError) usageExit("doctor", err.message);
      throw err;
    }
    const { runDoctor } = await import("../doctor/run.ts");
    const { exitCode } = await runDoctor({ target, apiUrl, apiKey: apiKey || undefined, ca, timeoutMs, json: !!a.json });
    process.exitCode = exitCode;
    // Everything doctor opened is closed; should a stray socket linger, do not wait for it.
    setTimeout(() => process.exit(exitCode), 2000).unref();
  },
});

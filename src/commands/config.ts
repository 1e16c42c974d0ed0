/**
 * `azhexgate config check [FILE]` — validates a `start` config file (default ./azhexgate.json or
 * ./azhexgate.toml) without starting anything: exit 0 and a summary, or exit 2 and the error
 * naming the file, the key and the expected shape.
 */
import { defineCommand } from "citty";
import { strictFlags, usageExit } from "./_args.ts";

const checkArgs = {
  file: { type: "positional", required: false, description: "Config file (default: ./azhexgate.json or ./azhexgate.toml)", valueHint: "file" },
} as const;

const check = defineCommand({
  meta: { name: "check", description: "Validate a config file of azhexgate start (unknown keys, wrong types)" },
  args: checkArgs,
  async run({ args, rawArgs }) {
    strictFlags("config check", rawArgs, checkArgs);
    const { readStartFile } = await import("../agent/config-file.ts");
    const cwd = process.cwd();
    let f;
    try {
      f = await readStartFile(args.file, cwd);
    } catch (err) {
      usageExit("config check", (err as Error).message);
    }
    if (!f.file) usageExit("config check", `no config file: neither ${cwd}/azhexgate.json nor ${cwd}/azhexgate.toml exists (or name one: azhexgate config check FILE)`);
    const tunnels = (f.tunnels ?? []).map((t) => `port ${t.port}${t.subdomain ? ` as ${t.subdomain}` : ""}`);
    console.log(`${f.file}: ok${tunnels.length ? ` (${tunnels.length} tunnel${tunnels.length > 1 ? "s" : ""}: ${tunnels.join(", ")})` : " (no tunnels: give --port or a positional port to start)"}`);
  },
});

export default defineCommand({
  meta: { name: "config", description: "Work with azhexgate.json / azhexgate.toml config files" },
  subCommands: { check },
});

/**
 * `azhexgate relay` — the local Azure Relay Hybrid Connections emulator on its own.
 * Prints a connection string; stops cleanly on Ctrl+C / SIGTERM.
 */
import { defineCommand, type ArgsDef } from "citty";
import { strictFlags } from "./_args.ts";

const flags = {
  port: { type: "string", description: "TCP port to listen on (0 = any free port)", default: "9300", valueHint: "n" },
  host: { type: "string", description: "Address to bind", default: "127.0.0.1", valueHint: "addr" },
  hc: { type: "string", description: "Hybrid connection to create at start (comma-separated for several)", valueHint: "name" },
  "auto-create": { type: "boolean", description: "Create hybrid connections on demand when a listener connects", default: true },
  "key-name": { type: "string", description: "Name of the namespace SAS rule", default: "RootManageSharedAccessKey" },
  "tls-cert": { type: "string", description: "PEM certificate file: serve wss:// and https://", valueHint: "file" },
  "tls-key": { type: "string", description: "PEM private key file for --tls-cert", valueHint: "file" },
} as const satisfies ArgsDef;

export default defineCommand({
  meta: { name: "relay", description: "Run the local Azure Relay Hybrid Connections emulator (loopback, for development and tests)" },
  args: flags,
  async run({ args, rawArgs }) {
    strictFlags("relay", rawArgs, flags);
    const port = Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error(`azhexgate relay: --port must be a whole number from 0 to 65535 (got "${args.port}")`);
      process.exit(2);
    }
    if (Boolean(args["tls-cert"]) !== Boolean(args["tls-key"])) {
      console.error("azhexgate relay: --tls-cert and --tls-key go together");
      process.exit(2);
    }
    const { startEmulator } = await import("../emulator/server.ts");
    const tls = args["tls-cert"]
      ? { cert: await Bun.file(args["tls-cert"]).text(), key: await Bun.file(args["tls-key"]!).text() }
      : undefined;
    const relay = await startEmulator({
      hostname: args.host,
      port,
      tls,
      autoCreate: args["auto-create"],
      namespaceRules: [{ name: args["key-name"] }],
      hybridConnections: (args.hc ?? "").split(",").filter(Boolean).map((path) => ({ path })),
    });
    console.log(`relay emulator listening on ${relay.url}`);
    console.log(`connection string: ${relay.connectionString(args["key-name"])}`);
    const stop = async () => {
      await relay.stop();
      process.exit(0);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  },
});

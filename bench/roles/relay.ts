/**
 * Relay role: the relay emulator in its own process, one hybrid connection.
 *   bun bench/roles/relay.ts PORT HC_PATH
 * Prints `READY {"port","endpoint","keyName","key"}` once listening.
 */
import { startEmulator } from "../../src/emulator/server.ts";

const port = Number(process.argv[2] ?? 0);
const hcPath = process.argv[3] ?? "hc-bench";
const relay = await startEmulator({ port, hybridConnections: [{ path: hcPath }] });
const keyName = "RootManageSharedAccessKey";
const key = relay.entities.namespaceRules.get(keyName)!.primaryKey;
console.log(`READY ${JSON.stringify({ port: relay.port, endpoint: `ws://127.0.0.1:${relay.port}`, keyName, key })}`);
const stop = async () => {
  await relay.stop().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

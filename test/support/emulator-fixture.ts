/**
 * Shared setup of the emulator test files: one emulator per test (stopped after it), client
 * sockets closed after each test, and SAS tokens signed with the emulator's keys.
 */
import { afterEach } from "bun:test";
import { createListener, type HybridConnectionListener } from "../../src/hc/listener.ts";
import { createSasToken } from "../../src/hc/sas.ts";
import { type EmulatorHandle, type EmulatorOptions, startEmulator } from "../../src/emulator/server.ts";

export const ROOT = "RootManageSharedAccessKey";

export function emulatorFixture(defaults: EmulatorOptions) {
  let emu: EmulatorHandle | undefined;
  const sockets: WebSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.close();
    await emu?.stop();
    emu = undefined;
  });
  return {
    sockets,
    async start(o: EmulatorOptions = {}): Promise<EmulatorHandle> {
      emu = await startEmulator({ ...defaults, ...o });
      return emu;
    },
  };
}

/** The primary key of `rule` on the namespace or on the `hc` entity. */
export function ruleKey(e: EmulatorHandle, rule = ROOT): string {
  const r = e.entities.findRule(undefined, rule) ?? e.entities.get("hc")?.rules.get(rule);
  if (!r) throw new Error(`no rule ${rule}`);
  return r.primaryKey;
}

/** A SAS token for `path` on this emulator (rule, lifetime and key overridable). */
export function sasFor(e: EmulatorHandle, path = "hc", o: { rule?: string; ttl?: number; key?: string } = {}): string {
  const rule = o.rule ?? ROOT;
  return createSasToken(`http://127.0.0.1:${e.port}/${path}`, rule, o.key ?? ruleKey(e, rule), Math.floor(Date.now() / 1000) + (o.ttl ?? 60));
}

/** A listener on `hcPath` that accepts every rendezvous and echoes each message back. */
export async function echoListener(o: Parameters<typeof createListener>[0]): Promise<HybridConnectionListener> {
  const listener = await createListener(o);
  listener.on("accept", (msg) => {
    listener.accept(msg).then(
      (ws) => ws.on("message", (d) => ws.send(d)),
      () => {},
    );
  });
  return listener;
}

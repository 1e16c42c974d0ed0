/**
 * The tunnel service's unit-test harness (test/api-tunnels-*.test.ts): a relay emulator and its
 * local binding, with a switch that fails one kind of relay call; an in-memory SQLite registry, an
 * injected clock and a captured JSON log per test. Live bindings: tests read `now`, `registry`…
 * and change them with setNow / setFailRelay.
 */
import { afterAll, beforeAll, beforeEach, expect } from "bun:test";
import { ApiError } from "../../src/api/errors.ts";
import { TunnelService, type TunnelServiceOptions } from "../../src/api/tunnels.ts";
import { createLocalBinding } from "../../src/control/local.ts";
import type { Provisioner, RelayBinding } from "../../src/control/types.ts";
import { type EmulatorHandle, startEmulator } from "../../src/emulator/server.ts";
import { createLogger } from "../../src/log.ts";
import { openSqliteRegistry } from "../../src/registry/sqlite.ts";
import type { TunnelRegistry } from "../../src/registry/types.ts";

export const T0 = 1_800_000_000_000;
export let emu: EmulatorHandle;
export let binding: RelayBinding;
export let registry: TunnelRegistry;
export let now = T0;
export let failRelay: "ensure" | "remove" | "issue" | undefined;
export let lines: string[];

export const setNow = (t: number) => {
  now = t;
};
export const setFailRelay = (f: typeof failRelay) => {
  failRelay = f;
};

/** Registers the hooks: one relay emulator per file, a fresh registry, clock and log per test. */
export function useTunnelServiceFixture(): void {
  beforeAll(async () => {
    emu = await startEmulator();
    binding = createLocalBinding(emu, { now: () => now });
  });
  afterAll(async () => {
    await emu.stop();
  });
  beforeEach(async () => {
    await registry?.close();
    registry = openSqliteRegistry(":memory:");
    now = T0;
    failRelay = undefined;
    lines = [];
  });
}

/** The local binding, with a switch that makes one kind of relay call fail (a relay outage). */
export const provisioner: Provisioner = {
  ensure: (p) => (failRelay === "ensure" ? Promise.reject(new Error("relay down")) : binding.provisioner.ensure(p)),
  remove: (p) => (failRelay === "remove" ? Promise.reject(new Error("relay down")) : binding.provisioner.remove(p)),
};
export function service(o: Partial<TunnelServiceOptions> = {}): TunnelService {
  const issuer = {
    issue: (p: string, ttl: number) => (failRelay === "issue" ? Promise.reject(new Error("no key")) : binding.issuer.issue(p, ttl)),
    issueSend: (p: string, ttl: number) => binding.issuer.issueSend!(p, ttl),
    invalidate: (p?: string) => binding.issuer.invalidate(p),
  };
  const log = createLogger({ format: "json", level: "debug", sink: (l) => lines.push(l) });
  return new TunnelService({ registry, provisioner, issuer, now: () => now, log, ...o });
}
export async function apiError(p: Promise<unknown>): Promise<{ status: number; code: string; message: string; field?: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    const a = e as ApiError;
    return { status: a.status, code: a.code, message: a.message, ...(a.extra.field ? { field: a.extra.field } : {}) };
  }
  throw new Error("expected an ApiError");
}
export const logged = (event: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === event);
export const hcExists = (hcPath: string) => emu.entities.get(hcPath) !== undefined;

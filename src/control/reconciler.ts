/**
 * The reconciler: deletes `hc-*` hybrid connections no tunnel in the registry owns, so a lost
 * registry (or a crash between "HC created" and "record deleted") never leaks namespace quota —
 * hybrid connections count against the namespace's entity quota
 * (https://learn.microsoft.com/en-us/azure/azure-relay/relay-quotas).
 *
 * Safety rules, so a tunnel being created right now is never touched:
 *  - only names starting with `hc-` (what TunnelService provisions) are ever considered;
 *  - an HC is deleted only after it has been seen orphaned for `graceMs` (first sighting is
 *    remembered per process) AND it was created / last updated at least `graceMs` ago (ARM's
 *    `createdAt` / `updatedAt`, https://learn.microsoft.com/en-us/rest/api/relay/hybrid-connections/list-by-namespace);
 *  - the registry is asked again for that one tunnel just before the delete, and once more after
 *    it: a tunnel that appeared meanwhile gets its HC back (ensure).
 * Several gateways sharing one (Redis) registry may each run it: they see the same registry and
 * deletes are idempotent (an HC already gone is a 404, ignored by the provisioner).
 */
import type { Logger } from "../log.ts";
import type { TunnelRegistry } from "../registry/types.ts";
import type { HcInfo, Provisioner } from "./types.ts";

export const DEFAULT_RECONCILE_INTERVAL_MS = 5 * 60_000;
export const DEFAULT_RECONCILE_GRACE_MS = 10 * 60_000;
const PREFIX = "hc-";

export interface ReconcilerOptions {
  provisioner: Provisioner;
  registry: Pick<TunnelRegistry, "list" | "get">;
  /** Time between passes (default 5 min; 0 = no timer, call runOnce yourself). */
  intervalMs?: number;
  /** How long an HC must be orphaned and untouched before it goes (default 10 min). */
  graceMs?: number;
  now?: () => number;
  log?: Logger;
}

export interface ReconcileResult {
  /** `hc-*` names deleted in this pass. */
  deleted: string[];
  /** Orphans seen but still inside their grace period. */
  waiting: string[];
  /** `hc-*` names a tunnel owns. */
  owned: number;
}

export interface Reconciler {
  /** One pass now (a pass already running is shared). */
  runOnce(): Promise<ReconcileResult>;
  stop(): void;
}

export function startReconciler(o: ReconcilerOptions): Reconciler {
  const now = o.now ?? Date.now;
  const graceMs = o.graceMs ?? DEFAULT_RECONCILE_GRACE_MS;
  const intervalMs = o.intervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS;
  const list = o.provisioner.list?.bind(o.provisioner);
  /** lower-cased HC name → when this process first saw it orphaned. */
  const orphanSince = new Map<string, number>();

  const pass = async (): Promise<ReconcileResult> => {
    const result: ReconcileResult = { deleted: [], waiting: [], owned: 0 };
    if (!list) return result;
    const t = now();
    const hcs: HcInfo[] = (await list()).filter((h) => h.name.toLowerCase().startsWith(PREFIX));
    // ARM names are case-insensitive; the registry stores `hc-{id}` in lower case.
    const owned = new Set((await o.registry.list()).map((r) => r.hcPath.toLowerCase()));
    const listed = new Set<string>();
    for (const hc of hcs) {
      const key = hc.name.toLowerCase();
      listed.add(key);
      if (owned.has(key)) {
        orphanSince.delete(key);
        result.owned++;
        continue;
      }
      const since = orphanSince.get(key) ?? t;
      orphanSince.set(key, since);
      const touched = Math.max(hc.createdAt ?? 0, hc.updatedAt ?? 0);
      if (t - since < graceMs || t - touched < graceMs) {
        result.waiting.push(hc.name);
        continue;
      }
      const id = key.slice(PREFIX.length);
      if (await o.registry.get(id)) {
        orphanSince.delete(key); // created since the list: owned now
        result.owned++;
        continue;
      }
      try {
        await o.provisioner.remove(hc.name);
      } catch (err) {
        o.log?.warn("reconciler could not delete an orphaned hybrid connection", { hc: hc.name, error: (err as Error)?.message ?? String(err) });
        continue;
      }
      orphanSince.delete(key);
      result.deleted.push(hc.name);
      o.log?.info("reconciler deleted orphaned hybrid connection", {
        hc: hc.name,
        orphaned_for_s: Math.round((t - since) / 1000),
        created_at: hc.createdAt === undefined ? undefined : new Date(hc.createdAt).toISOString(),
      });
      // The tiny race left: a tunnel with this id created between the check and the delete.
      const late = await o.registry.get(id);
      if (late) {
        await o.provisioner.ensure(late.hcPath);
        o.log?.warn("reconciler restored a hybrid connection a new tunnel claimed during its delete", { hc: late.hcPath });
      }
    }
    for (const key of [...orphanSince.keys()]) if (!listed.has(key)) orphanSince.delete(key);
    if (result.deleted.length > 0 || result.waiting.length > 0) {
      o.log?.debug("reconciler pass", { deleted: result.deleted.length, waiting: result.waiting.length, owned: result.owned });
    }
    return result;
  };

  let running: Promise<ReconcileResult> | undefined;
  const runOnce = (): Promise<ReconcileResult> => {
    if (running) return running;
    const p = pass().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };

  if (!list) o.log?.info("reconciler off: this relay binding cannot list hybrid connections (set AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP)");
  const timer =
    list && intervalMs > 0
      ? setInterval(() => {
          runOnce().catch((err) => o.log?.warn("reconciler pass failed", { error: (err as Error)?.message ?? String(err) }));
        }, intervalMs)
      : undefined;
  timer?.unref?.();

  return {
    runOnce,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

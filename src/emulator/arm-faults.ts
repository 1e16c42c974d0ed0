/**
 * Test fault `denyArmCalls` for the emulator's ARM subset (arm.ts): ARM answers 403
 * AuthorizationFailed — what a caller whose role assignment has not propagated yet gets ("... If
 * access was recently granted, please refresh your credentials.",
 * https://learn.microsoft.com/en-us/azure/role-based-access-control/troubleshooting) — for the
 * next N calls and / or for a while.
 */
import { ArmError } from "./arm.ts";
import type { EntityStore } from "./entities.ts";

/** Per emulator (entity store): how many more calls, and until when, ARM refuses with 403. */
const denials = new WeakMap<EntityStore, { calls: number; untilMs: number }>();

/** Test fault: the next `calls` ARM calls and / or every call for `forMs` get 403 AuthorizationFailed; `false` clears. */
export function denyArmCalls(entities: EntityStore, o: { calls?: number; forMs?: number } | false): void {
  if (o === false) denials.delete(entities);
  else denials.set(entities, { calls: Math.max(0, o.calls ?? 0), untilMs: o.forMs ? Date.now() + o.forMs : 0 });
}

/** The refusal for this call while the fault is on (and counts it), else undefined. */
export function deniedArmCall(entities: EntityStore, req: Request, path: string): ArmError | undefined {
  const d = denials.get(entities);
  if (!d || (d.calls <= 0 && Date.now() >= d.untilMs)) return undefined;
  if (d.calls > 0) d.calls--;
  const verb = req.method === "GET" ? "read" : req.method === "DELETE" ? "delete" : req.method === "PUT" ? "write" : "action";
  return new ArmError(
    403,
    "AuthorizationFailed",
    `The client 'azhexgate-gateway' with object id '00000000-0000-0000-0000-000000000000' does not have authorization to perform action 'Microsoft.Relay/namespaces/hybridConnections/${verb}' over scope '${path}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
  );
}

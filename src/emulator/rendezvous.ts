/**
 * Single-use rendezvous addresses (hybrid-connections.md §5, §6.3–6.4). The sender side (connect.ts,
 * http.ts) registers an entry under a fresh id; the listener's WebSocket to
 * `/$hc/{path}?sb-hc-action=accept|request&sb-hc-id={id}` takes it — once — and the entry's
 * `onConnect` upgrades or answers. Fault switches (refuse, blackhole) apply here.
 */
import { failureResponse, describe } from "./auth.ts";
import type { Core } from "./types.ts";

export interface RendezvousEntry {
  readonly id: string;
  readonly kind: "accept" | "request";
  /** Entity path (case as created). */
  readonly hcPath: string;
  /** The listener's handshake: upgrade it (return undefined) or answer it. */
  onConnect(req: Request, url: URL): Response | undefined;
  /** The window closed before any listener came. */
  onExpire(): void;
}

interface Slot {
  entry: RendezvousEntry;
  timer: ReturnType<typeof setTimeout>;
}

export class RendezvousTable {
  private readonly slots = new Map<string, Slot>();

  /** Registers `entry` for `ttlMs`; `onExpire` fires if nobody takes it in time. */
  add(entry: RendezvousEntry, ttlMs: number): void {
    const timer = setTimeout(() => {
      if (this.slots.get(entry.id)?.entry !== entry) return;
      this.slots.delete(entry.id);
      try {
        entry.onExpire();
      } catch {
        /* an expiry hook never takes the server down */
      }
    }, ttlMs);
    this.slots.set(entry.id, { entry, timer });
  }

  peek(id: string): RendezvousEntry | undefined {
    return this.slots.get(id)?.entry;
  }

  /** Removes and returns the entry (single use). */
  take(id: string): RendezvousEntry | undefined {
    const slot = this.slots.get(id);
    if (!slot) return undefined;
    clearTimeout(slot.timer);
    this.slots.delete(id);
    return slot.entry;
  }

  /** Expires everything now (server stop). */
  clear(): void {
    for (const [id, slot] of [...this.slots]) {
      clearTimeout(slot.timer);
      this.slots.delete(id);
      try {
        slot.entry.onExpire();
      } catch {
        /* ignore */
      }
    }
  }
}

/** A listener's rendezvous handshake (`sb-hc-action=accept|request`). */
export async function handleRendezvous(core: Core, req: Request, url: URL, action: "accept" | "request", entityPath: string): Promise<Response | undefined> {
  const host = req.headers.get("host") ?? "";
  const id = url.searchParams.get("sb-hc-id") ?? "";
  if (core.faults.blackhole) {
    await core.faults.whileBlackholed(Math.max(core.opts.acceptTimeoutMs, core.opts.responseTimeoutMs), req.signal);
    if (req.signal.aborted) return new Response(null, { status: 499 });
  }
  const refused = core.faults.refusedStatus(entityPath);
  if (refused !== undefined) return failureResponse(refused, describe("Rendezvous refused (injected fault).", host, entityPath));
  const entry = core.rendezvous.peek(id);
  const rest = entityPath.replace(/^\/+|\/+$/g, "").toLowerCase();
  const hc = entry?.hcPath.toLowerCase();
  if (!entry || entry.kind !== action || !hc || (rest !== hc && !rest.startsWith(`${hc}/`)))
    return failureResponse(403, describe("The rendezvous address is not valid or has expired.", host, entityPath));
  core.rendezvous.take(id);
  return entry.onConnect(req, url);
}

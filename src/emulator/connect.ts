/**
 * WebSocket senders (hybrid-connections.md §4–5): hold the sender's upgrade, send `accept` to one
 * listener, wait (≤ acceptTimeoutMs) for its rendezvous, then complete both legs (pair.ts relays
 * the messages). A rendezvous carrying `sb-hc-statusCode` is a reject: the listener gets 410, the sender
 * that status with the description as body.
 */
import { randomUUID } from "node:crypto";
import { encodeControlMessage } from "../hc/messages.ts";
import { stripRelayQuery } from "../hc/address.ts";
import { authorize, describe, failureResponse, wsToken } from "./auth.ts";
import type { HybridConnection } from "./entities.ts";
import { Pair } from "./pair.ts";
import { type Core, canonicalHeader } from "./types.ts";

type Outcome =
  | { kind: "accepted"; pair: Pair; protocol?: string }
  | { kind: "rejected"; status: number; description: string }
  | { kind: "expired" }
  | { kind: "gone" };

const TOKEN_HEADERS = new Set(["servicebusauthorization"]);

/** The sender's upgrade headers for `accept.connectHeaders` (token carriers removed). */
export function connectHeaders(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of req.headers) {
    if (TOKEN_HEADERS.has(name.toLowerCase())) continue;
    out[canonicalHeader(name)] = value;
  }
  return out;
}

/** A fresh connection id: the sender's `sb-hc-id` when it gave one and it is free. */
function connectionId(core: Core, given: string | null): string {
  if (given && !core.rendezvous.peek(given)) return given;
  return `${given || randomUUID()}_G${Math.floor(Math.random() * 1e6)}`;
}

/** The rendezvous address: `ws://{host}/$hc/{hcPath}{/suffix}?{app query}&sb-hc-action={action}&sb-hc-id={id}`. */
export function rendezvousAddress(core: Core, host: string, hcPath: string, suffix: string, search: string, action: string, id: string): string {
  const app = stripRelayQuery(search);
  const sep = app ? "&" : "?";
  const path = `${hcPath}${suffix ? `/${suffix}` : ""}`;
  return `${core.rendezvousBase(host)}/$hc/${path}${app}${sep}sb-hc-action=${action}&sb-hc-id=${encodeURIComponent(id)}`;
}

/** `GET /$hc/{path}[/suffix]?sb-hc-action=connect` (or no action): a WebSocket sender. */
export async function handleConnect(core: Core, req: Request, url: URL, hc: HybridConnection, suffix: string): Promise<Response | undefined> {
  const host = req.headers.get("host") ?? "";
  let tokenExpiresAt: number | undefined;
  if (hc.requiresClientAuthorization) {
    const v = authorize(core.auth, wsToken(req, url), hc.path, hc, "Send", host);
    if (!v.ok) return failureResponse(v.status, v.description);
    tokenExpiresAt = v.expiresAt;
  }
  const picked = core.listeners.pick(hc.path, req.headers);
  if (!picked.ok) return failureResponse(picked.status, describe(picked.description, host, hc.path));
  const listener = picked.listener;
  const server = core.server();
  const id = connectionId(core, url.searchParams.get("sb-hc-id"));
  const rawPath = url.pathname.replace(/^\/\$hc\//i, "");
  const suffixRaw = rawPath.split("/").slice(hc.path.split("/").length).join("/");
  const address = rendezvousAddress(core, host, hc.path, suffixRaw || suffix, url.search, "accept", id);

  const outcome = Promise.withResolvers<Outcome>();
  core.rendezvous.add(
    {
      id,
      kind: "accept",
      hcPath: hc.path,
      onExpire: () => outcome.resolve({ kind: "expired" }),
      onConnect: (lreq, lurl) => {
        const status = lurl.searchParams.get("sb-hc-statusCode");
        if (status !== null) {
          const code = Number(status);
          outcome.resolve({
            kind: "rejected",
            status: Number.isInteger(code) && code >= 200 && code <= 599 ? code : 400,
            description: lurl.searchParams.get("sb-hc-statusDescription") ?? "",
          });
          return failureResponse(410, "Gone: the connection was rejected and the sender notified.");
        }
        const pair = new Pair(() => core.liveness.untrack(pair));
        const protocol = lreq.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim() || undefined;
        const ok = server.upgrade(lreq, {
          data: { kind: "leg", pair, side: "listener" },
          headers: protocol ? { "Sec-WebSocket-Protocol": protocol } : undefined,
        });
        if (!ok) {
          outcome.resolve({ kind: "rejected", status: 502, description: "The listener's rendezvous failed." });
          return failureResponse(400, "WebSocket upgrade failed");
        }
        outcome.resolve({ kind: "accepted", pair, protocol });
        return undefined;
      },
    },
    core.opts.acceptTimeoutMs,
  );
  const onAbort = () => {
    if (core.rendezvous.take(id)) outcome.resolve({ kind: "gone" });
  };
  req.signal.addEventListener("abort", onAbort, { once: true });

  const accept = {
    accept: {
      address,
      id,
      connectHeaders: connectHeaders(req),
      remoteEndpoint: remoteEndpoint(server.requestIP(req)),
    },
  };
  void (async () => {
    if (core.faults.delayAcceptMs > 0) await Bun.sleep(core.faults.delayAcceptMs);
    if (!core.rendezvous.peek(id)) return;
    const sent = listener.ws && !listener.closed ? listener.ws.send(encodeControlMessage(accept)) : 0;
    if (sent === 0 && core.rendezvous.take(id))
      outcome.resolve({ kind: "rejected", status: 404, description: "There are no listeners connected for the endpoint." });
  })().catch(() => outcome.resolve({ kind: "rejected", status: 500, description: "Internal error" }));

  const result = await outcome.promise;
  req.signal.removeEventListener("abort", onAbort);
  switch (result.kind) {
    case "accepted": {
      const ok = server.upgrade(req, {
        data: { kind: "leg", pair: result.pair, side: "sender" },
        headers: result.protocol ? { "Sec-WebSocket-Protocol": result.protocol } : undefined,
      });
      if (ok) {
        core.liveness.track(result.pair, hc.path, tokenExpiresAt);
        return undefined;
      }
      result.pair.abandon("listener", 1001, "The sender went away");
      return new Response(null, { status: 499 });
    }
    case "rejected":
      return failureResponse(result.status, result.status === 404 ? describe(result.description, host, hc.path) : result.description);
    case "expired":
      return failureResponse(504, describe("The listener did not accept the connection in time.", host, hc.path));
    case "gone":
      return new Response(null, { status: 499 });
  }
}

export function remoteEndpoint(ip: { address: string; port: number } | null): { address: string; port: number } | undefined {
  return ip ? { address: ip.address.replace(/^::ffff:/, ""), port: ip.port } : undefined;
}

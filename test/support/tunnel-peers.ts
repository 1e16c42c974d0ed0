/**
 * In-memory tunnel peers for protocol tests: two Sessions back to back (`pair`), or one Session
 * driven by hand (`raw`: forge frames with `inject`, read what it sent with `frames`).
 */
import { FrameType as T, decodeFrames, encodeFrames, type Frame } from "../../src/tunnel/frame.ts";
import { encodeOpenHead } from "../../src/tunnel/head-binary.ts";
import { Session, type SessionOptions, type Transport } from "../../src/tunnel/session.ts";
import type { TunnelStream } from "../../src/tunnel/stream.ts";

export const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** Two sessions back to back; asynchronous delivery; a transport can be told it is congested. */
export function pair(gw: Partial<SessionOptions> = {}, ag: Partial<SessionOptions> = {}) {
  let a!: Session;
  let b!: Session;
  const closes: Array<[number | undefined, string | undefined]> = [];
  const mk = (deliver: () => Session): Transport => ({
    send(data) {
      setImmediate(() => deliver().handleMessage(data));
      return true;
    },
    drained: () => Promise.resolve(),
    close(code, reason) {
      closes.push([code, reason]);
      setImmediate(() => deliver().handleClose(`peer closed (${code} ${reason})`));
    },
  });
  a = new Session(mk(() => b), { role: "gateway", ...gw });
  b = new Session(mk(() => a), { role: "agent", ...ag });
  return { gateway: a, agent: b, closes };
}

/** An agent or gateway Session driven by hand: `inject` forges frames, `frames()` decodes what it sent. */
export function raw(opts: SessionOptions, peerHello: object) {
  const sent: Array<Uint8Array | string> = [];
  const state = { congested: false, closed: null as null | [number | undefined, string | undefined], drain: (() => {}) as () => void };
  const t: Transport = {
    send(d) {
      sent.push(d);
      return !state.congested;
    },
    drained: () => new Promise<void>((r) => (state.drain = r)),
    close(code, reason) {
      state.closed = [code, reason];
    },
  };
  const s = new Session(t, opts);
  s.handleMessage(JSON.stringify({ features: ["ws", "tcp"], window: 1 << 20, ...peerHello }));
  return {
    s,
    state,
    inject: (...frames: Frame[]) => s.handleMessage(encodeFrames(frames)),
    frames: (): Frame[] => sent.filter((m): m is Uint8Array => typeof m !== "string").flatMap((m) => (decodeFrames(m) as { frames: Frame[] }).frames),
  };
}
export const V2_GATEWAY = { azhexgate: 1, versions: [1, 2], role: "gateway", sessionWindow: 1 << 24 };
export const V2_AGENT = { ...V2_GATEWAY, role: "agent" };
export const GET = { kind: "http" as const, method: "GET", target: "/", headers: [] as Array<[string, string]> };
export const open = (id: number, head: object = GET): Frame => ({ type: T.OPEN, stream: id, payload: encodeOpenHead(head as never)! });

export async function roundTrip(gateway: Session, target = "/") {
  const s = await gateway.open({ ...GET, target });
  s.end();
  const head = await s.response;
  return { status: head.status, body: await new Response(s.body).text() };
}
export const echoAgent = (s: TunnelStream) => {
  s.sendResponse({ status: 200, headers: [["x-target", s.head!.target]] });
  void s.write(new TextEncoder().encode(`hello ${s.head!.target}`)).then(() => s.end());
};

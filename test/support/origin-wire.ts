/**
 * The origin-parser tests' harness (test/origin-parse*.test.ts): an `Exchange` on a connection
 * whose socket only records pause / resume / terminate, fed wire bytes whole or one at a time.
 */
import { expect } from "bun:test";
import { Exchange, OriginConn, type OriginResponse } from "../../src/agent/origin-conn.ts";

export function setup(noBody = false) {
  const sock = { paused: 0, resumed: 0, terminated: 0, pause() { this.paused++; }, resume() { this.resumed++; }, terminate() { this.terminated++; } };
  const conn = new OriginConn("test");
  conn.socket = sock as unknown as OriginConn["socket"];
  const ex = new Exchange(conn, noBody);
  conn.active = ex;
  const done: boolean[] = [];
  ex.onDone = (reusable) => done.push(reusable);
  return { sock, conn, ex, done };
}

export const enc = (s: string) => new Uint8Array(Buffer.from(s, "latin1"));
export const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");

export type Outcome = {
  status?: number;
  headers?: Array<[string, string]>;
  body?: string;
  error?: string;
  done: boolean[];
  keepAlive: boolean;
  destroyed: boolean;
};

/** Feeds `wire` whole or byte by byte; `close`: then the app closes the socket. */
export async function parse(wire: string, o: { bytewise?: boolean; noBody?: boolean; close?: boolean } = {}): Promise<Outcome> {
  const { sock, conn, ex, done } = setup(o.noBody);
  const bytes = enc(wire);
  if (o.bytewise) for (let i = 0; i < bytes.length; i++) ex.onData(bytes.subarray(i, i + 1));
  else ex.onData(bytes);
  if (o.close) conn.onClose();
  const out: Outcome = { done, keepAlive: ex.keepAlive, destroyed: sock.terminated > 0 };
  let head: OriginResponse;
  try {
    head = await ex.head;
  } catch (e) {
    return { ...out, error: (e as Error).message };
  }
  out.status = head.status;
  out.headers = head.headers as Array<[string, string]>;
  if (!ex.isDone() && done.length === 0) return out; // still waiting for body bytes
  const parts: string[] = [];
  try {
    for await (const c of head.body) parts.push(text(c));
  } catch (e) {
    out.error = (e as Error).message;
  }
  out.body = parts.join("");
  out.keepAlive = ex.keepAlive;
  out.destroyed = sock.terminated > 0;
  return out;
}

/** The same wire parsed whole and byte by byte must give the same outcome. */
export async function both(wire: string, o: { noBody?: boolean; close?: boolean } = {}): Promise<Outcome> {
  const whole = await parse(wire, o);
  const bytewise = await parse(wire, { ...o, bytewise: true });
  expect(bytewise).toEqual(whole);
  return whole;
}

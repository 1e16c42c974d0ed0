/**
 * Control-channel messages (src/hc/messages.ts): what the listener accepts from the relay and what
 * it refuses, as values (issue 18: the module had no fast test, so every mutant survived).
 */
import { describe, expect, test } from "bun:test";
import { decodeControlMessage, encodeControlMessage, MAX_CONTROL_MESSAGE, needsRendezvous } from "../src/hc/messages.ts";

const dec = (v: unknown) => decodeControlMessage(typeof v === "string" ? v : JSON.stringify(v));

describe("decodeControlMessage", () => {
  test("accept: address, id, headers (arrays joined, numbers and booleans as text), remote endpoint", () => {
    expect(
      dec({ accept: { address: "wss://r/$hc/x?sb-hc-id=1", id: "1", connectHeaders: { A: ["x", "y"], N: 5, B: true }, remoteEndpoint: { address: "1.2.3.4", port: 9 } } }),
    ).toStrictEqual({ accept: { address: "wss://r/$hc/x?sb-hc-id=1", id: "1", connectHeaders: { A: "x, y", N: "5", B: "true" }, remoteEndpoint: { address: "1.2.3.4", port: 9 } } });
    expect(dec({ accept: { address: "a", id: "1", connectHeaders: null } })).toStrictEqual({ accept: { address: "a", id: "1", connectHeaders: {} } });
    expect(dec({ accept: { address: "a", id: "1" } })).toStrictEqual({ accept: { address: "a", id: "1", connectHeaders: {} } });
    // a remote endpoint without a numeric port keeps port 0; one without an address is dropped
    expect(dec({ accept: { address: "a", id: "1", remoteEndpoint: { address: "h", port: "x" } } })).toStrictEqual({ accept: { address: "a", id: "1", connectHeaders: {}, remoteEndpoint: { address: "h", port: 0 } } });
    expect(dec({ accept: { address: "a", id: "1", remoteEndpoint: { port: 1 } } })).toStrictEqual({ accept: { address: "a", id: "1", connectHeaders: {} } });
    expect(dec({ accept: { address: "a", id: "1", remoteEndpoint: "h:1" } })).toStrictEqual({ accept: { address: "a", id: "1", connectHeaders: {} } });
  });

  test("accept: a missing address or id, or headers of the wrong shape, is an error", () => {
    const err = { error: "accept needs address, id and connectHeaders" };
    expect(dec({ accept: { id: "1" } })).toStrictEqual(err);
    expect(dec({ accept: { address: "a" } })).toStrictEqual(err);
    expect(dec({ accept: { address: 1, id: "1" } })).toStrictEqual(err);
    expect(dec({ accept: { address: "a", id: "1", connectHeaders: "x" } })).toStrictEqual(err);
    expect(dec({ accept: { address: "a", id: "1", connectHeaders: ["x"] } })).toStrictEqual(err);
    expect(dec({ accept: { address: "a", id: "1", connectHeaders: { A: { b: 1 } } } })).toStrictEqual(err);
    expect(dec({ accept: { address: "a", id: "1", connectHeaders: { A: null } } })).toStrictEqual(err);
  });

  test("request: full and address-only", () => {
    expect(
      dec({ request: { address: "wss://r", id: "7", method: "POST", requestTarget: "/p?q", requestHeaders: { H: "v" }, body: true, remoteEndpoint: { address: "h", port: 2 } } }),
    ).toStrictEqual({ request: { address: "wss://r", id: "7", method: "POST", requestTarget: "/p?q", requestHeaders: { H: "v" }, body: true, remoteEndpoint: { address: "h", port: 2 } } });
    expect(dec({ request: { address: "wss://r" } })).toStrictEqual({ request: { address: "wss://r", id: "" } });
    expect(dec({ request: { address: "wss://r", id: 5, method: 1, requestTarget: 2, body: "yes" } })).toStrictEqual({ request: { address: "wss://r", id: "" } });
    expect(dec({ request: { address: "wss://r", body: false } })).toStrictEqual({ request: { address: "wss://r", id: "", body: false } });
    expect(dec({ request: { id: "1" } })).toStrictEqual({ error: "request needs an address" });
    expect(dec({ request: { address: "a", requestHeaders: [] } })).toStrictEqual({ error: "request needs an address" });
  });

  test("response: status as number or numeric text, 100–999 only; body true only when true", () => {
    expect(dec({ response: { requestId: "1", statusCode: 200, body: true, statusDescription: "OK", responseHeaders: { A: "b" } } })).toStrictEqual({
      response: { requestId: "1", statusCode: 200, body: true, statusDescription: "OK", responseHeaders: { A: "b" } },
    });
    expect(dec({ response: { requestId: "1", statusCode: "404" } })).toStrictEqual({ response: { requestId: "1", statusCode: 404, body: false } });
    expect(dec({ response: { requestId: "1", statusCode: 100, body: "true" } })).toStrictEqual({ response: { requestId: "1", statusCode: 100, body: false } });
    expect(dec({ response: { requestId: "1", statusCode: 999, statusDescription: 5 } })).toStrictEqual({ response: { requestId: "1", statusCode: 999, body: false } });
    const err = { error: "response needs requestId and a numeric statusCode" };
    for (const statusCode of [99, 1000, 200.5, "abc", null, undefined, true, [200], { v: 200 }]) expect(dec({ response: { requestId: "1", statusCode } })).toStrictEqual(err);
    expect(dec({ response: { statusCode: 200 } })).toStrictEqual(err);
    expect(dec({ response: { requestId: "1", statusCode: 200, responseHeaders: "x" } })).toStrictEqual(err);
  });

  test("renewToken needs a non-empty token", () => {
    expect(dec({ renewToken: { token: "SharedAccessSignature sr=x" } })).toStrictEqual({ renewToken: { token: "SharedAccessSignature sr=x" } });
    expect(dec({ renewToken: { token: "" } })).toStrictEqual({ error: "renewToken needs a token" });
    expect(dec({ renewToken: { token: 1 } })).toStrictEqual({ error: "renewToken needs a token" });
  });

  test("shape errors: not JSON, not an object, not exactly one action, unknown action, body not an object", () => {
    expect(dec("{")).toStrictEqual({ error: "control message is not valid JSON" });
    expect(dec("[]")).toStrictEqual({ error: "control message is not a JSON object" });
    expect(dec("null")).toStrictEqual({ error: "control message is not a JSON object" });
    expect(dec("5")).toStrictEqual({ error: "control message is not a JSON object" });
    expect(dec({})).toStrictEqual({ error: "control message must have exactly one action" });
    expect(dec({ accept: {}, request: {} })).toStrictEqual({ error: "control message must have exactly one action" });
    expect(dec({ ping: {} })).toStrictEqual({ error: 'unknown action "ping"' });
    expect(dec({ accept: [] })).toStrictEqual({ error: '"accept" must be an object' });
    expect(dec({ accept: null })).toStrictEqual({ error: '"accept" must be an object' });
  });

  test("the size limit: exactly 64 KiB is read, one character more is refused", () => {
    const pad = (n: number) => {
      const head = '{"renewToken":{"token":"';
      const tail = '"}}';
      return head + "t".repeat(n - head.length - tail.length) + tail;
    };
    expect(MAX_CONTROL_MESSAGE).toBe(65536);
    expect("renewToken" in dec(pad(MAX_CONTROL_MESSAGE))).toBe(true);
    expect(dec(pad(MAX_CONTROL_MESSAGE + 1))).toStrictEqual({ error: "control message too large" });
  });
});

describe("encode / needsRendezvous", () => {
  test("encode round-trips through decode", () => {
    const m = { response: { requestId: "9", statusCode: 201, body: false, responseHeaders: { X: "y" } } };
    expect(encodeControlMessage(m)).toBe(JSON.stringify(m));
    expect(dec(encodeControlMessage(m))).toStrictEqual(m);
  });
  test("a request needs a rendezvous when its method or its body flag is missing", () => {
    expect(needsRendezvous({ address: "a", id: "" })).toBe(true);
    expect(needsRendezvous({ address: "a", id: "", method: "GET" })).toBe(true);
    expect(needsRendezvous({ address: "a", id: "", body: false })).toBe(true);
    expect(needsRendezvous({ address: "a", id: "", method: "GET", body: false })).toBe(false);
  });
});

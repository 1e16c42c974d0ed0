/**
 * Edges of the relay addressing and SAS helpers that the older tests left open (issue 18: mutants
 * that survived in src/hc/sas.ts and src/hc/address.ts). Each case is an input a user or the relay
 * can really produce.
 */
import { describe, expect, test } from "bun:test";
import { createSasToken, parseSasToken, redactToken, sasScope } from "../src/hc/sas.ts";
import { cloudOf, connectUrl, parseConnectionString, resolveNamespace, resourceUri, stripRelayQuery } from "../src/hc/address.ts";

describe("parseSasToken", () => {
  const good = createSasToken("http://ns.servicebus.windows.net/hc", "rule", "k", 1_900_000_000);
  test("only a token with the SharedAccessSignature prefix parses", () => {
    expect(parseSasToken(good)).not.toBeNull();
    expect(parseSasToken(good.slice("SharedAccessSignature ".length))).toBeNull();
    expect(parseSasToken(`Bearer ${good.slice("SharedAccessSignature ".length)}`)).toBeNull();
    expect(parseSasToken(`SharedAccessSignatureX${good.slice("SharedAccessSignature ".length)}`)).toBeNull(); // same length, wrong prefix
  });
  test("trailing whitespace after the fields is tolerated (copied from a terminal)", () => {
    expect(parseSasToken(`${good}  `)?.skn).toBe("rule");
  });
  test("a field with an empty name, a duplicate field or an se that is not all digits is refused", () => {
    expect(parseSasToken(`${good}&=x`)).toBeNull();
    expect(parseSasToken(`${good}&se=1`)).toBeNull();
    expect(parseSasToken(good.replace("se=1900000000", "se=1900000000x"))).toBeNull();
    expect(parseSasToken(good.replace("se=1900000000", "se=x1900000000"))).toBeNull();
    expect(parseSasToken(good.replace("se=1900000000", "se=1234567890123"))).toBeNull(); // 13 digits
  });
});

describe("sasScope", () => {
  test("every leading and trailing slash goes, inner ones stay", () => {
    expect(sasScope("http://NS.servicebus.windows.net//$hc/a/b//")).toEqual({ host: "ns.servicebus.windows.net", path: "a/b" });
    expect(sasScope("http://ns/a//b")).toEqual({ host: "ns", path: "a//b" });
  });
});

describe("redactToken", () => {
  test("a URL-encoded signature at the very end of a log line is redacted", () => {
    expect(redactToken("sb-hc-token=SharedAccessSignature%20sr%3Dx%26sig%3DSECRET")).toBe("sb-hc-token=SharedAccessSignature%20sr%3Dx%26sig%3DREDACTED");
  });
});

describe("address", () => {
  test("only a string that starts with a scheme is a URL", () => {
    expect(() => resolveNamespace("my namespace wss://x")).toThrow(/not a valid name/);
  });
  test("a URL without a host is refused with its own sentence", () => {
    expect(() => resolveNamespace("ws://")).toThrow(/not a valid URL|has no host/);
    expect(() => resolveNamespace("sb:///path")).toThrow(/has no host/);
  });
  test("ports are stripped only at the end of the host", () => {
    expect(cloudOf("ns.servicebus.windows.net:443")).toBe("public");
    expect(resourceUri({ scheme: "ws", host: "127.0.0.1:9000" }, "hc")).toBe("http://127.0.0.1/hc");
    expect(resourceUri({ scheme: "ws", host: "[::1]:9000" }, "hc")).toBe("http://[::1]/hc"); // an emulator on the IPv6 loopback
  });
  test("all leading and trailing slashes of a path and suffix go", () => {
    expect(connectUrl({ scheme: "wss", host: "h" }, "//a/b//", { suffix: "//s" })).toBe("wss://h/$hc/a/b/s?sb-hc-action=connect");
  });
  test("stripRelayQuery keeps a pair with an empty name and matches the key, not the value", () => {
    expect(stripRelayQuery("?=sb-hc-x&a=1")).toBe("?=sb-hc-x&a=1");
    expect(stripRelayQuery("?a=sb-hc-x&sb-hc-id=1")).toBe("?a=sb-hc-x");
  });
  test("connection strings: segments without a name are ignored, names and values are trimmed", () => {
    const cs = parseConnectionString(" Endpoint = sb://ns.servicebus.windows.net/ ; =junk; SharedAccessKeyName = rule ;SharedAccessKey= k= ;EntityPath=hc");
    expect(cs).toEqual({ endpoint: { scheme: "wss", host: "ns.servicebus.windows.net" }, keyName: "rule", key: "k=", sharedAccessSignature: undefined, entityPath: "hc" });
    expect(() => parseConnectionString("=sb://x;SharedAccessKey=k")).toThrow(/no Endpoint/);
    expect(parseConnectionString("Endpoint=sb://ns.servicebus.windows.net/;EntityPathX").entityPath).toBeUndefined(); // a segment without "="
  });
});

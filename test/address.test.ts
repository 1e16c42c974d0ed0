import { describe, expect, test } from "bun:test";
import {
  cloudOf,
  connectUrl,
  httpUrl,
  listenUrl,
  parseConnectionString,
  rejectUrl,
  resolveNamespace,
  resourceUri,
  stripRelayQuery,
} from "../src/hc/address.ts";

describe("resolveNamespace", () => {
  test.each([
    ["public", "contoso.servicebus.windows.net"],
    ["usgov", "contoso.servicebus.usgovcloudapi.net"],
    ["china", "contoso.servicebus.chinacloudapi.cn"],
  ] as const)("short name in the %s cloud", (cloud, host) => {
    expect(resolveNamespace("contoso", cloud)).toEqual({ scheme: "wss", host });
    expect(resolveNamespace("  Contoso ", cloud)).toEqual({ scheme: "wss", host });
    expect(cloudOf(host)).toBe(cloud);
  });

  test("short name defaults to the public cloud", () => {
    expect(resolveNamespace("my-relay-01")).toEqual({ scheme: "wss", host: "my-relay-01.servicebus.windows.net" });
  });

  test("FQDNs are used as given (lower-cased), over wss", () => {
    expect(resolveNamespace("Contoso.ServiceBus.Windows.Net")).toEqual({ scheme: "wss", host: "contoso.servicebus.windows.net" });
    expect(resolveNamespace("contoso.servicebus.usgovcloudapi.net", "china")).toEqual({
      scheme: "wss",
      host: "contoso.servicebus.usgovcloudapi.net",
    });
    expect(resolveNamespace("relay.example.org:8443")).toEqual({ scheme: "wss", host: "relay.example.org:8443" });
  });

  test.each([
    ["ws://127.0.0.1:9000", { scheme: "ws", host: "127.0.0.1:9000" }],
    ["ws://127.0.0.1:9000/", { scheme: "ws", host: "127.0.0.1:9000" }],
    ["http://localhost:9000", { scheme: "ws", host: "localhost:9000" }],
    ["wss://LOCALHOST:8443/", { scheme: "wss", host: "localhost:8443" }],
    ["https://contoso.servicebus.windows.net:443", { scheme: "wss", host: "contoso.servicebus.windows.net" }],
    ["sb://contoso.servicebus.windows.net/", { scheme: "wss", host: "contoso.servicebus.windows.net" }],
    ["http://[::1]:9000", { scheme: "ws", host: "[::1]:9000" }],
  ])("URL %s", (input, expected) => {
    expect(resolveNamespace(input)).toEqual(expected as never);
  });

  test.each(["abc", "1contoso", "contoso-", "con_toso", "", "   ", "a".repeat(51), "foo bar.com", "bad!host.net"])(
    "invalid %j → TypeError naming the input",
    (input) => {
      expect(() => resolveNamespace(input)).toThrow(TypeError);
      expect(() => resolveNamespace(input)).toThrow(`"${input}"`);
    },
  );

  test("a URL without a host is refused", () => {
    expect(() => resolveNamespace("ws://")).toThrow(TypeError);
  });

  test("a malformed URL gets a message naming the input", () => {
    expect(() => resolveNamespace("ws://")).toThrow('"ws://"');
  });

  test("cloudOf: unknown hosts and the emulator", () => {
    expect(cloudOf("ns.servicebus.chinacloudapi.cn:443")).toBe("china");
    expect(cloudOf("NS.SERVICEBUS.WINDOWS.NET")).toBe("public");
    expect(cloudOf("127.0.0.1:9000")).toBeUndefined();
    expect(cloudOf("servicebus.windows.net.evil.example")).toBeUndefined();
  });
});

describe("URL builders", () => {
  const azure = resolveNamespace("contoso");
  const emu = resolveNamespace("ws://127.0.0.1:9000");

  test("listenUrl", () => {
    expect(listenUrl(azure, "hyco")).toBe("wss://contoso.servicebus.windows.net/$hc/hyco?sb-hc-action=listen");
    expect(listenUrl(emu, "/a/b c/", { id: "abc" })).toBe("ws://127.0.0.1:9000/$hc/a/b%20c?sb-hc-action=listen&sb-hc-id=abc");
    const withToken = new URL(listenUrl(azure, "hyco", { token: "SharedAccessSignature sr=x&sig=y%3D&se=1&skn=k" }));
    expect(withToken.searchParams.get("sb-hc-token")).toBe("SharedAccessSignature sr=x&sig=y%3D&se=1&skn=k");
    expect(withToken.searchParams.get("sb-hc-action")).toBe("listen");
  });

  test("connectUrl with suffix and application query", () => {
    expect(connectUrl(emu, "hyco", { suffix: "/chat/room", query: { x: "1", y: "a b" } })).toBe(
      "ws://127.0.0.1:9000/$hc/hyco/chat/room?x=1&y=a%20b&sb-hc-action=connect",
    );
    expect(connectUrl(azure, "hyco", { id: "c1" })).toBe("wss://contoso.servicebus.windows.net/$hc/hyco?sb-hc-action=connect&sb-hc-id=c1");
  });

  test("reserved sb-hc- query names are refused (any case)", () => {
    expect(() => connectUrl(emu, "hyco", { query: { "SB-HC-token": "1" } })).toThrow(TypeError);
    expect(() => httpUrl(emu, "hyco", { query: new URLSearchParams("sb-hc-action=x") })).toThrow(/reserved/);
  });

  test("httpUrl has no $hc and no action", () => {
    expect(httpUrl(azure, "hyco", { suffix: "api/items", query: new URLSearchParams("a=1&a=2") })).toBe(
      "https://contoso.servicebus.windows.net/hyco/api/items?a=1&a=2",
    );
    expect(httpUrl(emu, "hyco")).toBe("http://127.0.0.1:9000/hyco");
  });

  test("resourceUri: http scheme, no port, no trailing slash for entities", () => {
    expect(resourceUri(azure, "hyco")).toBe("http://contoso.servicebus.windows.net/hyco");
    expect(resourceUri(azure, "a/b")).toBe("http://contoso.servicebus.windows.net/a/b");
    expect(resourceUri(azure)).toBe("http://contoso.servicebus.windows.net/");
    expect(resourceUri(emu, "hyco")).toBe("http://127.0.0.1/hyco");
  });

  test("rejectUrl appends status and encoded description", () => {
    expect(rejectUrl("wss://g1.servicebus.windows.net:443/$hc/hyco?sb-hc-action=accept&sb-hc-id=1", 404, "Not Found here")).toBe(
      "wss://g1.servicebus.windows.net:443/$hc/hyco?sb-hc-action=accept&sb-hc-id=1&sb-hc-statusCode=404&sb-hc-statusDescription=Not%20Found%20here",
    );
    expect(rejectUrl("wss://x/$hc/h", 500, "a&b")).toBe("wss://x/$hc/h?sb-hc-statusCode=500&sb-hc-statusDescription=a%26b");
  });
});

describe("stripRelayQuery (§6.2)", () => {
  test.each([
    ["?a=1&sb-hc-token=x&b=2", "?a=1&b=2"],
    ["?sb-hc-token=a&sb-hc-id=b", ""],
    ["?SB-HC-Action=listen", ""],
    ["a=1&sb-hc-id=2", "?a=1"],
    // a bare `sb-hc-x` without `=` is kept
    ["?sb-hc-x", "?sb-hc-x"],
    // these pass unchanged
    ["?a=1&a=2&", "?a=1&a=2&"],
    ["?&&&", "?&&&"],
    ["?%2f%3a%3d%26", "?%2f%3a%3d%26"],
    ["?+", "?+"],
    ["", ""],
    ["?", ""],
  ])("%j → %j", (input, expected) => {
    expect(stripRelayQuery(input)).toBe(expected);
  });
});

describe("parseConnectionString", () => {
  test("Azure form with EntityPath", () => {
    expect(
      parseConnectionString(
        "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=abc+/=;EntityPath=hyco",
      ),
    ).toEqual({
      endpoint: { scheme: "wss", host: "contoso.servicebus.windows.net" },
      keyName: "RootManageSharedAccessKey",
      key: "abc+/=",
      sharedAccessSignature: undefined,
      entityPath: "hyco",
    });
  });

  test("names are case-insensitive, values keep '=' and a trailing ';' is fine", () => {
    const cs = parseConnectionString("endpoint=ws://127.0.0.1:9000/;sharedaccesskeyname=k;SHAREDACCESSKEY=v==;");
    expect(cs.endpoint).toEqual({ scheme: "ws", host: "127.0.0.1:9000" });
    expect(cs.keyName).toBe("k");
    expect(cs.key).toBe("v==");
  });

  test("SharedAccessSignature form", () => {
    const cs = parseConnectionString("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=a&sig=b=&se=1&skn=k");
    expect(cs.sharedAccessSignature).toBe("SharedAccessSignature sr=a&sig=b=&se=1&skn=k");
    expect(cs.keyName).toBeUndefined();
  });

  test("no Endpoint → TypeError", () => {
    expect(() => parseConnectionString("SharedAccessKeyName=x;SharedAccessKey=y")).toThrow(TypeError);
    expect(() => parseConnectionString("")).toThrow(/Endpoint/);
  });
});

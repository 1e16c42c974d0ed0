import { describe, expect, test } from "bun:test";
import { createSasToken, parseSasToken, redactToken, sasScope, scopeCovers, sign, verifySasSignature } from "../src/hc/sas.ts";

// Golden vectors: hybrid-connections.md §2.2.
const KEY = "dGVzdGtleS1ub3QtYS1yZWFsLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const SKN = "RootManageSharedAccessKey";
const SE = 1767225600;
const TOKEN_A =
  "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=DM%2Fe8rQr1AZRc%2FXd1Lk96ojMnxENLHC9SQ3UoUilTes%3D&se=1767225600&skn=RootManageSharedAccessKey";

function token(srRaw: string, sig: string): string {
  return `SharedAccessSignature sr=${srRaw}&sig=${encodeURIComponent(sig)}&se=${SE}&skn=${SKN}`;
}

describe("SAS golden vectors", () => {
  test("A: createSasToken produces exactly the reference token", () => {
    expect(createSasToken("http://contoso.servicebus.windows.net/hyco", SKN, KEY, SE)).toBe(TOKEN_A);
    expect(sign(KEY, `http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco\n${SE}`)).toBe("DM/e8rQr1AZRc/Xd1Lk96ojMnxENLHC9SQ3UoUilTes=");
  });

  test("A verifies and parses", () => {
    const t = parseSasToken(TOKEN_A)!;
    expect(t).toEqual({
      srRaw: "http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco",
      resource: "http://contoso.servicebus.windows.net/hyco",
      sig: "DM/e8rQr1AZRc/Xd1Lk96ojMnxENLHC9SQ3UoUilTes=",
      se: SE,
      skn: SKN,
    });
    expect(verifySasSignature(t, KEY)).toBe(true);
  });

  test("B: .NET form with trailing slash", () => {
    const t = parseSasToken(token("http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F", "eac2d1p/M9VMcwkeUyUdGuCHJYT4Kbh589jUwmeJUTI="))!;
    expect(verifySasSignature(t, KEY)).toBe(true);
    expect(sasScope(t.resource)).toEqual({ host: "contoso.servicebus.windows.net", path: "hyco" });
  });

  test("C: lower-case hex sr — the signature covers the raw sr text", () => {
    const raw = "http%3a%2f%2fcontoso.servicebus.windows.net%2fhyco%2f";
    const t = parseSasToken(token(raw, "NrHjg/raZ5TBzXBAuM1JVFXz3qllBF1EKkJ+9e0lFSw="))!;
    expect(t.srRaw).toBe(raw);
    expect(verifySasSignature(t, KEY)).toBe(true);
    // B's signature does not fit C's (differently encoded) sr.
    const wrong = parseSasToken(token(raw, "eac2d1p/M9VMcwkeUyUdGuCHJYT4Kbh589jUwmeJUTI="))!;
    expect(verifySasSignature(wrong, KEY)).toBe(false);
  });

  test("D: hyco listen-URI form keeps the port", () => {
    const t = parseSasToken(token("http%3A%2F%2Fcontoso.servicebus.windows.net%3A443%2Fhyco", "m7GEFhQDQuTnmorW8Dii4g1J7deM7JqOLSF0zEZ1ZCU="))!;
    expect(verifySasSignature(t, KEY)).toBe(true);
    expect(sasScope(t.resource)).toEqual({ host: "contoso.servicebus.windows.net", path: "hyco" });
  });

  test("negative: a signature made with the base64-DECODED key is rejected", () => {
    const decodedKeySig = "9MqQIVV11nbtTGUcCuH/E5HmpTAKJneany/W5q/s8Lw=";
    const t = parseSasToken(token("http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco", decodedKeySig))!;
    expect(verifySasSignature(t, KEY)).toBe(false);
  });

  test("wrong key, tampered se or sr are rejected", () => {
    const t = parseSasToken(TOKEN_A)!;
    expect(verifySasSignature(t, `${KEY}x`)).toBe(false);
    expect(verifySasSignature({ ...t, se: SE + 1 }, KEY)).toBe(false);
    expect(verifySasSignature({ ...t, srRaw: t.srRaw.replace("hyco", "hycp") }, KEY)).toBe(false);
    expect(verifySasSignature({ ...t, sig: "short" }, KEY)).toBe(false);
  });
});

describe("parseSasToken", () => {
  test("fields in any order", () => {
    const t = parseSasToken(
      "SharedAccessSignature skn=RootManageSharedAccessKey&se=1767225600&sig=DM%2Fe8rQr1AZRc%2FXd1Lk96ojMnxENLHC9SQ3UoUilTes%3D&sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco",
    )!;
    expect(t).not.toBeNull();
    expect(verifySasSignature(t, KEY)).toBe(true);
  });

  test("key names are URL-decoded", () => {
    const t = parseSasToken(createSasToken("http://h/x", "my rule&more", KEY, SE))!;
    expect(t.skn).toBe("my rule&more");
  });

  test.each([
    ["missing sr", `SharedAccessSignature sig=a&se=${SE}&skn=k`],
    ["missing sig", `SharedAccessSignature sr=a&se=${SE}&skn=k`],
    ["missing se", "SharedAccessSignature sr=a&sig=b&skn=k"],
    ["missing skn", `SharedAccessSignature sr=a&sig=b&se=${SE}`],
    ["non-numeric se", "SharedAccessSignature sr=a&sig=b&se=soon&skn=k"],
    ["negative se", "SharedAccessSignature sr=a&sig=b&se=-5&skn=k"],
    ["duplicate field", `SharedAccessSignature sr=a&sr=b&sig=b&se=${SE}&skn=k`],
    ["field without =", `SharedAccessSignature sr=a&sig&se=${SE}&skn=k`],
    ["no prefix", `sr=a&sig=b&se=${SE}&skn=k`],
    ["bearer JWT", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    ["bad escape", `SharedAccessSignature sr=%E0%A4%A&sig=b&se=${SE}&skn=k`],
    ["empty", ""],
    ["garbage", "\u0000\u00ff{}[]&&=="],
  ])("%s → null", (_name, input) => {
    expect(parseSasToken(input)).toBeNull();
  });
});

describe("sasScope / scopeCovers", () => {
  test.each([
    ["http://contoso.servicebus.windows.net/hyco", "hyco"],
    ["http://contoso.servicebus.windows.net/hyco/", "hyco"],
    ["http://contoso.servicebus.windows.net/$hc/hyco", "hyco"],
    ["https://CONTOSO.servicebus.windows.net:443/$hc/hyco/", "hyco"],
    ["sb://contoso.servicebus.windows.net/hyco", "hyco"],
    ["wss://Contoso.ServiceBus.Windows.Net:9443/a/b/", "a/b"],
    ["http://contoso.servicebus.windows.net/", ""],
    ["http://contoso.servicebus.windows.net", ""],
    ["http://contoso.servicebus.windows.net/$hc", ""],
    ["http://contoso.servicebus.windows.net/My%20Hc", "My Hc"],
  ])("%s → path %j", (resource, path) => {
    expect(sasScope(resource)).toEqual({ host: "contoso.servicebus.windows.net", path });
  });

  test("path case is kept, host is lower-cased", () => {
    expect(sasScope("http://NS.example/HyCo")).toEqual({ host: "ns.example", path: "HyCo" });
  });

  test("not a URL → null", () => {
    expect(sasScope("contoso/hyco")).toBeNull();
    expect(sasScope("")).toBeNull();
  });

  test("scopeCovers: namespace, equal, segment prefix, case-insensitive", () => {
    expect(scopeCovers("", "anything/at/all")).toBe(true);
    expect(scopeCovers("hyco", "hyco")).toBe(true);
    expect(scopeCovers("HYCO", "hyco")).toBe(true);
    expect(scopeCovers("a", "a/b")).toBe(true);
    expect(scopeCovers("a/b", "a/b/c")).toBe(true);
    expect(scopeCovers("a", "ab")).toBe(false);
    expect(scopeCovers("a/b", "a")).toBe(false);
    expect(scopeCovers("other", "hyco")).toBe(false);
  });
});

describe("redactToken", () => {
  test("SAS signature removed, everything else kept", () => {
    const r = redactToken(TOKEN_A);
    expect(r).toBe(
      "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=REDACTED&se=1767225600&skn=RootManageSharedAccessKey",
    );
    expect(r).not.toContain("DM%2Fe8");
  });

  test("inside a URL query (sb-hc-token=…) too", () => {
    const url = `wss://ns/$hc/h?sb-hc-action=listen&sb-hc-token=${encodeURIComponent(TOKEN_A)}&sb-hc-id=x`;
    const r = redactToken(url);
    expect(r).not.toContain("DM%252Fe8");
    expect(r).toContain("sig%3DREDACTED%26se%3D1767225600");
    expect(r).toEndWith("&sb-hc-id=x");
  });

  test("JWT signature removed, header and claims kept", () => {
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";
    expect(redactToken(`Bearer ${jwt}`)).toBe("Bearer eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.REDACTED");
  });
});

/**
 * The listen-key cache on its own, with a gated in-memory key reader: concurrent issues share one
 * read, and a read that was under way when invalidate() came is not kept.
 */
import { describe, expect, test } from "bun:test";
import { cachedKeyIssuer, envKeyIssuer } from "../src/control/azure-keys.ts";
import { LISTEN_RULE } from "../src/control/azure.ts";
import { resourceUri } from "../src/hc/address.ts";
import { parseSasToken, verifySasSignature } from "../src/hc/sas.ts";

describe("cachedKeyIssuer", () => {
  const endpoint = { scheme: "wss" as const, host: "contoso.servicebus.windows.net" };
  function counted() {
    const reads: string[] = [];
    let version = 0;
    const gates: Array<() => void> = [];
    const issuer = cachedKeyIssuer({
      endpoint,
      refreshMs: 60_000,
      now: Date.now,
      log: () => {},
      readKey: async (hc) => {
        reads.push(hc);
        const v = ++version;
        await new Promise<void>((r) => gates.push(r));
        return { keyName: LISTEN_RULE, key: `key-${v}` };
      },
    });
    const release = async () => {
      for (let i = 0; i < 100 && gates.length === 0; i++) await Bun.sleep(0);
      gates.shift()?.();
    };
    return { issuer, reads, release };
  }

  test("concurrent issues for a cold HC share one read; then the key is held", async () => {
    const { issuer, reads, release } = counted();
    const all = Promise.all(Array.from({ length: 5 }, () => issuer.issue("hc-1", 60)));
    await release();
    const tokens = await all;
    expect(reads).toEqual(["hc-1"]);
    for (const { token } of tokens) expect(verifySasSignature(parseSasToken(token)!, "key-1")).toBe(true);
    await issuer.issue("hc-1", 60);
    expect(reads).toEqual(["hc-1"]);
    expect(issuer.size).toBe(1);
  });

  test("a read under way when invalidate() came is not kept: it may predate the rotation", async () => {
    const { issuer, reads, release } = counted();
    const early = issuer.issue("hc-1", 60);
    await Bun.sleep(0);
    issuer.invalidate("hc-1");
    const late = issuer.issue("hc-1", 60);
    await release(); // the early read (key-1) finishes
    await release(); // the read started after invalidate (key-2)
    expect(verifySasSignature(parseSasToken((await early).token)!, "key-1")).toBe(true);
    expect(verifySasSignature(parseSasToken((await late).token)!, "key-2")).toBe(true);
    expect(reads).toEqual(["hc-1", "hc-1"]);
    // held now: key-2, no further read
    expect(verifySasSignature(parseSasToken((await issuer.issue("hc-1", 60)).token)!, "key-2")).toBe(true);
    expect(reads.length).toBe(2);
  });
});

describe("envKeyIssuer", () => {
  test("signs for the HC's resource URI with the env rule; expiresAt in ms; invalidate only logs", async () => {
    const endpoint = { scheme: "wss" as const, host: "contoso.servicebus.usgovcloudapi.net" };
    const events: string[] = [];
    const now = 1_767_225_600_000;
    const issuer = envKeyIssuer(endpoint, { keyName: "RootManageSharedAccessKey", key: "k3y" }, () => now, (e, f) => events.push(`${e} ${JSON.stringify(f)}`));
    const { token, expiresAt } = await issuer.issue("hc-7", 300);
    const t = parseSasToken(token)!;
    expect(t.resource).toBe(resourceUri(endpoint, "hc-7"));
    expect(t.resource).toBe("http://contoso.servicebus.usgovcloudapi.net/hc-7");
    expect(t.se).toBe(now / 1000 + 300);
    expect(expiresAt).toBe(now + 300_000);
    expect(verifySasSignature(t, "k3y")).toBe(true);
    issuer.invalidate("hc-7");
    expect(events.length).toBe(1);
    expect(events[0]).toStartWith("relay.keys.rejected ");
    expect(events[0]).not.toContain("k3y");
  });
});

/**
 * The SAS expiry boundary of the relay emulator (issue 18: with a real clock `<` and `<=` differ
 * only at an exact second, so the mutant survived). `authorize()` takes its clock from the
 * context (`now`), so the test sets it to the millisecond: a token is valid while
 * `now < se + skew` and refused 401 ExpiredToken from the exact second `se + skew` on (the
 * reasoning and sources: `sasExpired` in src/emulator/auth.ts).
 */
import { describe, expect, test } from "bun:test";
import { type AuthContext, authorize, sasExpired } from "../src/emulator/auth.ts";
import { EntityStore } from "../src/emulator/entities.ts";
import { createSasToken } from "../src/hc/sas.ts";

const SE = 1_767_225_600; // 2026-01-01T00:00:00Z
const entities = new EntityStore([{ name: "RootManageSharedAccessKey", rights: ["Listen", "Send", "Manage"] }]);
entities.upsert({ path: "hyco" });
const key = entities.namespaceRules.get("RootManageSharedAccessKey")!.primaryKey;
const token = createSasToken("http://ns.servicebus.windows.net/hyco", "RootManageSharedAccessKey", key, SE);

function at(nowMs: number, skew: number) {
  const ctx: AuthContext = { entities, tokenSkewSeconds: skew, lenientHost: true, now: () => nowMs };
  const hc = entities.get("hyco");
  return authorize(ctx, token, "hyco", hc, "Listen", "ns.servicebus.windows.net");
}

describe("a SAS token at its expiry second", () => {
  for (const skew of [0, 30]) {
    const edge = (SE + skew) * 1000;
    test(`skew ${skew} s: accepted 1 ms before se + skew, refused 401 ExpiredToken at exactly se + skew and after`, () => {
      const before = at(edge - 1, skew);
      expect(before.ok).toBe(true);
      if (before.ok) expect(before.expiresAt).toBe(SE);
      for (const now of [edge, edge + 1, edge + 1000]) {
        const v = at(now, skew);
        expect(v.ok).toBe(false);
        if (!v.ok) {
          expect(v.status).toBe(401);
          expect(v.description).toStartWith("ExpiredToken: The token is expired. Expiration time: '2026-01-01T00:00:00.000Z'.");
        }
      }
    });
  }

  test("sasExpired is the one comparison: false one millisecond before, true at the second", () => {
    expect(sasExpired(SE, 0, SE * 1000 - 1)).toBe(false);
    expect(sasExpired(SE, 0, SE * 1000)).toBe(true);
    expect(sasExpired(SE, 5, SE * 1000 + 4999)).toBe(false);
    expect(sasExpired(SE, 5, SE * 1000 + 5000)).toBe(true);
  });
});

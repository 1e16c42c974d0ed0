/**
 * Local mode of the control-plane seams: hybrid connections live in the relay emulator's entity
 * store (in-process), listener tokens are SAS tokens signed with a per-HC Listen-only rule, and
 * the gateway sends with the namespace's RootManageSharedAccessKey.
 *
 * Removing an HC closes its listeners with 1001 (the emulator's delete hook); ensuring it again
 * mints a fresh rule key, so tokens issued before the removal stop working (401).
 */
import type { EmulatorHandle } from "../emulator/server.ts";
import { resourceUri } from "../hc/address.ts";
import { createSasToken } from "../hc/sas.ts";
import { sasTokenProvider } from "../hc/tokens.ts";
import type { ListenerTokenIssuer, Provisioner, RelayBinding } from "./types.ts";

/** The per-HC SAS rule agents' tokens are signed with: Listen only. */
export const LISTEN_RULE = "azhexgate-listen";
/** The namespace rule the gateway signs its sender tokens with in local mode. */
export const ROOT_RULE = "RootManageSharedAccessKey";

export function createLocalBinding(emulator: EmulatorHandle, opts: { now?: () => number } = {}): RelayBinding {
  const now = opts.now ?? Date.now;
  const entities = emulator.entities;

  const provisioner: Provisioner = {
    async ensure(hcPath) {
      const hc = entities.get(hcPath);
      // upsert() re-mints the keys of every rule it is given: only add the rule when missing,
      // so ensure() stays idempotent and live tokens stay valid.
      if (hc?.rules.has(LISTEN_RULE)) return;
      entities.upsert({ path: hcPath, rules: [{ name: LISTEN_RULE, rights: ["Listen"] }] });
    },
    async remove(hcPath) {
      entities.delete(hcPath);
    },
    async list() {
      return entities.list().map((hc) => ({ name: hc.path, createdAt: hc.createdAt.getTime(), updatedAt: hc.updatedAt.getTime() }));
    },
  };

  const issuer: ListenerTokenIssuer = {
    async issue(hcPath, ttlSeconds) {
      const hc = entities.get(hcPath);
      const rule = hc?.rules.get(LISTEN_RULE);
      if (!hc || !rule) throw new Error(`hybrid connection "${hcPath}" has no "${LISTEN_RULE}" rule; ensure it first`);
      const expiresAt = Math.floor(now() / 1000) + ttlSeconds;
      const token = createSasToken(resourceUri(emulator.endpoint, hc.path), LISTEN_RULE, rule.primaryKey, expiresAt);
      return { token, expiresAt: expiresAt * 1000 };
    },
    invalidate() {
      // Keys are read from the entity store on every issue(): nothing is cached.
    },
  };

  const root = entities.namespaceRules.get(ROOT_RULE);
  if (!root) throw new Error(`the relay emulator has no "${ROOT_RULE}" namespace rule; start it with the default rules`);

  return {
    mode: "local",
    endpoint: emulator.endpoint,
    provisioner,
    issuer,
    // Read the key at each call: a regenerated root key is picked up at once.
    senderToken: {
      getToken: (uri, o) => sasTokenProvider(ROOT_RULE, root.primaryKey, 3600, now).getToken(uri, o),
    },
    async close() {},
  };
}

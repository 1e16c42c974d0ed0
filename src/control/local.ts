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
/**
 * The per-HC SAS rule `azhexgate connect`'s tokens are signed with: Send only. A token signed with
 * the namespace's root rule would carry Listen too (the rule's rights, not the token's scope, decide),
 * so a connecting user could listen on the tunnel's hybrid connection and take its traffic.
 */
export const SEND_RULE = "azhexgate-send";
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
      const rules = [];
      if (!hc?.rules.has(LISTEN_RULE)) rules.push({ name: LISTEN_RULE, rights: ["Listen" as const] });
      if (!hc?.rules.has(SEND_RULE)) rules.push({ name: SEND_RULE, rights: ["Send" as const] });
      if (rules.length > 0) entities.upsert({ path: hcPath, rules });
    },
    async remove(hcPath) {
      entities.delete(hcPath);
    },
    async list() {
      return entities.list().map((hc) => ({ name: hc.path, createdAt: hc.createdAt.getTime(), updatedAt: hc.updatedAt.getTime() }));
    },
  };

  const sign = (hcPath: string, ruleName: string, ttlSeconds: number) => {
    const hc = entities.get(hcPath);
    const rule = hc?.rules.get(ruleName);
    if (!hc || !rule) throw new Error(`hybrid connection "${hcPath}" has no "${ruleName}" rule; ensure it first`);
    const expiresAt = Math.floor(now() / 1000) + ttlSeconds;
    const token = createSasToken(resourceUri(emulator.endpoint, hc.path), ruleName, rule.primaryKey, expiresAt);
    return { token, expiresAt: expiresAt * 1000 };
  };
  const issuer: ListenerTokenIssuer = {
    async issue(hcPath, ttlSeconds) {
      return sign(hcPath, LISTEN_RULE, ttlSeconds);
    },
    async issueSend(hcPath, ttlSeconds) {
      // Tunnels created before issue 16 have no Send rule yet: add it (the Listen rule's key stays).
      if (!entities.get(hcPath)?.rules.has(SEND_RULE)) await provisioner.ensure(hcPath);
      return sign(hcPath, SEND_RULE, ttlSeconds);
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

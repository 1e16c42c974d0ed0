/**
 * The emulator's entities: hybrid connections and their SAS authorization rules, plus the
 * namespace-level rules. Shared by the data plane (listen / connect / HTTP) and the ARM subset.
 * Entity lookup is case-insensitive and by longest registered prefix on segment boundaries.
 */
import { randomBytes } from "node:crypto";

export type Right = "Listen" | "Send" | "Manage";

export interface AuthRule {
  name: string;
  rights: Right[];
  primaryKey: string;
  secondaryKey: string;
}

export interface HybridConnection {
  /** Entity path as created (case kept). */
  path: string;
  requiresClientAuthorization: boolean;
  userMetadata?: string;
  rules: Map<string, AuthRule>;
  createdAt: Date;
  updatedAt: Date;
}

export interface RuleSpec {
  name: string;
  rights?: Right[];
  primaryKey?: string;
  secondaryKey?: string;
}

export interface HcSpec {
  path: string;
  requiresClientAuthorization?: boolean;
  userMetadata?: string;
  rules?: RuleSpec[];
}

/** A fresh key in the shape Azure issues (44 base64 characters = 32 random bytes). */
export function newKey(): string {
  return randomBytes(32).toString("base64");
}

export function makeRule(spec: RuleSpec): AuthRule {
  return {
    name: spec.name,
    rights: spec.rights ?? ["Listen", "Send", "Manage"],
    primaryKey: spec.primaryKey ?? newKey(),
    secondaryKey: spec.secondaryKey ?? newKey(),
  };
}

export function grants(rule: AuthRule, right: Right): boolean {
  return rule.rights.includes(right) || rule.rights.includes("Manage");
}

export class EntityStore {
  readonly namespaceRules = new Map<string, AuthRule>();
  private readonly hcs = new Map<string, HybridConnection>();
  private readonly deleteHooks: Array<(hc: HybridConnection) => void> = [];

  constructor(namespaceRules: RuleSpec[] = []) {
    for (const r of namespaceRules) this.namespaceRules.set(r.name, makeRule(r));
  }

  list(): HybridConnection[] {
    return [...this.hcs.values()];
  }

  get(path: string): HybridConnection | undefined {
    return this.hcs.get(path.replace(/^\/+|\/+$/g, "").toLowerCase());
  }

  /** Creates or updates a hybrid connection (`requiresClientAuthorization` is fixed at creation). */
  upsert(spec: HcSpec): HybridConnection {
    const path = spec.path.replace(/^\/+|\/+$/g, "");
    if (!/^[A-Za-z0-9._\-/]{1,260}$/.test(path) || path.split("/").some((s) => s === "")) {
      throw new TypeError(`"${spec.path}" is not a valid hybrid connection name`);
    }
    const now = new Date();
    let hc = this.hcs.get(path.toLowerCase());
    if (!hc) {
      hc = {
        path,
        requiresClientAuthorization: spec.requiresClientAuthorization ?? true,
        rules: new Map(),
        createdAt: now,
        updatedAt: now,
      };
      this.hcs.set(path.toLowerCase(), hc);
    }
    if (spec.userMetadata !== undefined) hc.userMetadata = spec.userMetadata;
    for (const r of spec.rules ?? []) hc.rules.set(r.name, makeRule(r));
    hc.updatedAt = now;
    return hc;
  }

  /** Deletes a hybrid connection; the data plane hears of it (to close listeners with 1001). */
  delete(path: string): boolean {
    const hc = this.get(path);
    if (!hc) return false;
    this.hcs.delete(hc.path.toLowerCase());
    for (const hook of this.deleteHooks) hook(hc);
    return true;
  }

  onDelete(hook: (hc: HybridConnection) => void): void {
    this.deleteHooks.push(hook);
  }

  /**
   * Maps a request path (after `/$hc/` or `/`) to an entity by the longest registered prefix on
   * segment boundaries; the rest is the suffix (no leading slash).
   */
  resolve(requestPath: string): { hc: HybridConnection; suffix: string } | undefined {
    const segments = requestPath.replace(/^\/+/, "").split("/");
    for (let n = segments.length; n > 0; n--) {
      const hc = this.hcs.get(segments.slice(0, n).join("/").toLowerCase());
      if (hc) return { hc, suffix: segments.slice(n).join("/") };
    }
    return undefined;
  }

  /** The rule named `keyName` on the entity or, failing that, on the namespace. */
  findRule(hc: HybridConnection | undefined, keyName: string): AuthRule | undefined {
    return hc?.rules.get(keyName) ?? this.namespaceRules.get(keyName);
  }

  /** Replaces one key of a rule with a fresh one; returns the rule. */
  regenerate(rule: AuthRule, keyType: "PrimaryKey" | "SecondaryKey", value?: string): AuthRule {
    if (keyType === "PrimaryKey") rule.primaryKey = value ?? newKey();
    else rule.secondaryKey = value ?? newKey();
    return rule;
  }
}

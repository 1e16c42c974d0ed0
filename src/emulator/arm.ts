/**
 * The emulator's subset of Azure Resource Manager for `Microsoft.Relay` — what `@azure/arm-relay`
 * 3.x (api-version 2017-04-01 by default) needs to manage hybrid connections and their SAS rules:
 *
 *   …/namespaces/{ns}                                         GET, PUT (no-op: the emulator has one namespace)
 *   …/namespaces/{ns}/authorizationRules[/{rule}]             GET (list / one), PUT, DELETE
 *   …/namespaces/{ns}/authorizationRules/{rule}/listKeys      POST
 *   …/namespaces/{ns}/authorizationRules/{rule}/regenerateKeys POST {keyType, key?}
 *   …/namespaces/{ns}/hybridConnections[/{hc}]                GET (list / one), PUT, DELETE
 *   …/hybridConnections/{hc}/authorizationRules[/{rule}]      GET (list / one), PUT, DELETE
 *   …/hybridConnections/{hc}/authorizationRules/{rule}/listKeys|regenerateKeys  POST
 *   (… = /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Relay)
 *
 * Like ARM: a `Bearer` Authorization header is required (401 AuthenticationFailed) but its value is
 * NOT checked — any bearer token is accepted, the emulator has no identity provider; `api-version`
 * is required (400); names are case-insensitive; the subscription, resource group and namespace must
 * be the emulator's (404); errors are `{ error: { code, message } }`; deleting something absent is 204.
 * Connection strings name the emulator as the client reached it: `Endpoint=sb://{Host}/` over TLS,
 * `Endpoint=ws://{Host}/` over plain HTTP (sb:// would send clients to wss).
 *
 * Test fault `denyArmCalls` (arm-faults.ts): 403 AuthorizationFailed while a role "propagates".
 */
import { randomUUID } from "node:crypto";
import { deniedArmCall } from "./arm-faults.ts";
import { type AuthRule, type EntityStore, type HybridConnection, makeRule, type Right } from "./entities.ts";

export interface ArmContext {
  entities: EntityStore;
  subscriptionId: string;
  resourceGroup: string;
  namespace: string;
  listenerCount(hcPath: string): number;
}

const NS_TYPE = "Microsoft.Relay/namespaces";
const HC_TYPE = "Microsoft.Relay/namespaces/hybridConnections";
const RIGHTS: readonly Right[] = ["Listen", "Send", "Manage"];
const RULE_NAME = /^[A-Za-z0-9._-]{1,256}$/;

export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
      "x-ms-request-id": randomUUID(),
      ...headers,
    },
  });
}

const eq = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();

/** Handles an ARM request, or returns undefined when `url` is not a path this subset knows. */
export async function handleArm(req: Request, url: URL, ctx: ArmContext): Promise<Response | undefined> {
  let seg: string[];
  try {
    seg = url.pathname.split("/").filter((s) => s !== "").map(decodeURIComponent);
  } catch {
    return undefined;
  }
  // subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Relay/namespaces[/{ns}/…]
  if (!(eq(seg[0], "subscriptions") && eq(seg[2], "resourceGroups") && eq(seg[4], "providers") && eq(seg[5], "Microsoft.Relay") && eq(seg[6], "namespaces"))) {
    return undefined;
  }
  const [, sub, , rg, , , , ns, ...rest] = seg as [string, string, string, string, string, string, string, string | undefined, ...string[]];
  const route = matchRoute(ns, rest);
  if (!route) return undefined;

  try {
    const auth = req.headers.get("authorization") ?? "";
    if (!/^Bearer\s+\S+/i.test(auth)) {
      throw new ArmError(
        401,
        "AuthenticationFailed",
        auth ? "Authentication failed. The 'Authorization' header is not a Bearer token." : "Authentication failed. The 'Authorization' header is missing.",
        { "www-authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"' },
      );
    }
    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) throw new ArmError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
    if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(apiVersion)) {
      throw new ArmError(400, "InvalidApiVersionParameter", `The api-version '${apiVersion}' is invalid.`);
    }
    const refused = deniedArmCall(ctx.entities, req, url.pathname);
    if (refused) throw refused;
    if (!eq(sub, ctx.subscriptionId)) throw new ArmError(404, "SubscriptionNotFound", `The subscription '${sub}' could not be found.`);
    if (!eq(rg, ctx.resourceGroup)) throw new ArmError(404, "ResourceGroupNotFound", `Resource group '${rg}' could not be found.`);
    if (ns !== undefined && !eq(ns, ctx.namespace)) {
      throw new ArmError(404, "ResourceNotFound", `The Resource '${NS_TYPE}/${ns}' under resource group '${rg}' was not found.`);
    }
    const allowed = ALLOWED[route.kind];
    if (!allowed.includes(req.method)) {
      throw new ArmError(405, "MethodNotAllowed", `The HTTP method '${req.method}' is not supported at this path.`, { allow: allowed.join(", ") });
    }
    return await dispatch(route, req, new Shapes(ctx, req, url));
  } catch (err) {
    if (err instanceof ArmError) return json(err.status, { error: { code: err.code, message: err.message } }, err.headers);
    throw err;
  }
}

type Route =
  | { kind: "namespaces" }
  | { kind: "namespace" }
  | { kind: "nsRules" }
  | { kind: "nsRule" | "nsListKeys" | "nsRegenerate"; rule: string }
  | { kind: "hcs" }
  | { kind: "hc" | "hcRules"; hc: string }
  | { kind: "hcRule" | "hcListKeys" | "hcRegenerate"; hc: string; rule: string };

const ALLOWED: Record<Route["kind"], string[]> = {
  namespaces: ["GET"],
  namespace: ["GET", "PUT"],
  nsRules: ["GET"],
  nsRule: ["GET", "PUT", "DELETE"],
  nsListKeys: ["POST"],
  nsRegenerate: ["POST"],
  hcs: ["GET"],
  hc: ["GET", "PUT", "DELETE"],
  hcRules: ["GET"],
  hcRule: ["GET", "PUT", "DELETE"],
  hcListKeys: ["POST"],
  hcRegenerate: ["POST"],
};

function matchRoute(ns: string | undefined, r: string[]): Route | undefined {
  if (ns === undefined) return { kind: "namespaces" };
  const [a, b, c, d, e, f] = r;
  if (a === undefined) return { kind: "namespace" };
  if (eq(a, "authorizationRules")) {
    if (b === undefined) return { kind: "nsRules" };
    if (c === undefined) return { kind: "nsRule", rule: b };
    if (d === undefined && eq(c, "listKeys")) return { kind: "nsListKeys", rule: b };
    if (d === undefined && eq(c, "regenerateKeys")) return { kind: "nsRegenerate", rule: b };
    return undefined;
  }
  if (!eq(a, "hybridConnections")) return undefined;
  if (b === undefined) return { kind: "hcs" };
  if (c === undefined) return { kind: "hc", hc: b };
  if (!eq(c, "authorizationRules")) return undefined;
  if (d === undefined) return { kind: "hcRules", hc: b };
  if (e === undefined) return { kind: "hcRule", hc: b, rule: d };
  if (f === undefined && eq(e, "listKeys")) return { kind: "hcListKeys", hc: b, rule: d };
  if (f === undefined && eq(e, "regenerateKeys")) return { kind: "hcRegenerate", hc: b, rule: d };
  return undefined;
}

async function dispatch(route: Route, req: Request, s: Shapes): Promise<Response> {
  const { entities } = s.ctx;
  switch (route.kind) {
    case "namespaces":
      return json(200, { value: [s.namespace()] });
    case "namespace":
      return json(200, s.namespace());
    case "nsRules":
      return json(200, { value: [...entities.namespaceRules.values()].map((r) => s.rule(undefined, r)) });
    case "nsRule": {
      const rules = entities.namespaceRules;
      if (req.method === "DELETE") return json(findKey(rules, route.rule, (k) => rules.delete(k)) ? 200 : 204, undefined);
      if (req.method === "PUT") return json(200, s.rule(undefined, putRule(rules, route.rule, await body(req))));
      return json(200, s.rule(undefined, s.nsRule(route.rule)));
    }
    case "nsListKeys":
      return json(200, s.keys(undefined, s.nsRule(route.rule)));
    case "nsRegenerate":
      return json(200, s.keys(undefined, regenerate(entities, s.nsRule(route.rule), await body(req))));
    case "hcs":
      return json(200, { value: entities.list().map((hc) => s.hc(hc)) });
    case "hc": {
      if (req.method === "DELETE") {
        const hc = entities.get(route.hc);
        return json(hc && entities.delete(hc.path) ? 200 : 204, undefined);
      }
      if (req.method === "PUT") return json(200, s.hc(putHc(entities, route.hc, await body(req))));
      return json(200, s.hc(s.findHc(route.hc)));
    }
    case "hcRules": {
      const hc = s.findHc(route.hc);
      return json(200, { value: [...hc.rules.values()].map((r) => s.rule(hc, r)) });
    }
    case "hcRule": {
      const hc = s.findHc(route.hc);
      if (req.method === "DELETE") return json(findKey(hc.rules, route.rule, (k) => hc.rules.delete(k)) ? 200 : 204, undefined);
      if (req.method === "PUT") {
        const rule = putRule(hc.rules, route.rule, await body(req));
        hc.updatedAt = new Date();
        return json(200, s.rule(hc, rule));
      }
      return json(200, s.rule(hc, s.hcRule(hc, route.rule)));
    }
    case "hcListKeys": {
      const hc = s.findHc(route.hc);
      return json(200, s.keys(hc, s.hcRule(hc, route.rule)));
    }
    case "hcRegenerate": {
      const hc = s.findHc(route.hc);
      return json(200, s.keys(hc, regenerate(entities, s.hcRule(hc, route.rule), await body(req))));
    }
  }
}

/** When each emulator's namespace was first seen by ARM (stable across calls). */
const namespaceCreated = new WeakMap<EntityStore, string>();

/** Builds ARM-shaped resources; finds entities or throws 404. */
class Shapes {
  private readonly base: string;
  private readonly host: string;
  private readonly scheme: string;

  constructor(
    readonly ctx: ArmContext,
    req: Request,
    url: URL,
  ) {
    this.base = `/subscriptions/${ctx.subscriptionId}/resourceGroups/${ctx.resourceGroup}/providers/${NS_TYPE}/${ctx.namespace}`;
    this.host = req.headers.get("host") ?? url.host;
    this.scheme = url.protocol === "https:" ? "https" : "http";
  }

  namespace(): unknown {
    let created = namespaceCreated.get(this.ctx.entities);
    if (!created) namespaceCreated.set(this.ctx.entities, (created = new Date().toISOString()));
    return {
      id: this.base,
      name: this.ctx.namespace,
      type: NS_TYPE,
      location: "local",
      sku: { name: "Standard", tier: "Standard" },
      properties: {
        provisioningState: "Succeeded",
        createdAt: created,
        updatedAt: created,
        serviceBusEndpoint: `${this.scheme}://${this.host}/`,
        metricId: `${this.ctx.subscriptionId}:${this.ctx.namespace}`,
      },
    };
  }

  hc(hc: HybridConnection): unknown {
    const properties: Record<string, unknown> = {
      createdAt: hc.createdAt.toISOString(),
      updatedAt: hc.updatedAt.toISOString(),
      listenerCount: this.ctx.listenerCount(hc.path),
      requiresClientAuthorization: hc.requiresClientAuthorization,
    };
    if (hc.userMetadata !== undefined) properties.userMetadata = hc.userMetadata;
    return { id: `${this.base}/hybridConnections/${hc.path}`, name: hc.path, type: HC_TYPE, properties };
  }

  rule(hc: HybridConnection | undefined, rule: AuthRule): unknown {
    const parent = hc ? `${this.base}/hybridConnections/${hc.path}` : this.base;
    return {
      id: `${parent}/authorizationRules/${rule.name}`,
      name: rule.name,
      type: hc ? `${HC_TYPE}/authorizationRules` : `${NS_TYPE}/authorizationRules`,
      properties: { rights: [...rule.rights] },
    };
  }

  keys(hc: HybridConnection | undefined, rule: AuthRule): unknown {
    // sb:// means TLS to every client (parseConnectionString maps it to wss), so a plain-HTTP
    // emulator names itself ws:// — as the emulator handle's own connectionString() does.
    const scheme = this.scheme === "https" ? "sb" : "ws";
    const cs = (key: string) =>
      `Endpoint=${scheme}://${this.host}/;SharedAccessKeyName=${rule.name};SharedAccessKey=${key}${hc ? `;EntityPath=${hc.path}` : ""}`;
    return {
      primaryConnectionString: cs(rule.primaryKey),
      secondaryConnectionString: cs(rule.secondaryKey),
      primaryKey: rule.primaryKey,
      secondaryKey: rule.secondaryKey,
      keyName: rule.name,
    };
  }

  findHc(name: string): HybridConnection {
    const hc = this.ctx.entities.get(name);
    if (!hc) throw new ArmError(404, "ResourceNotFound", `The Resource '${HC_TYPE}/${this.ctx.namespace}/${name}' was not found.`);
    return hc;
  }

  nsRule(name: string): AuthRule {
    const rules = this.ctx.entities.namespaceRules;
    const key = findKey(rules, name);
    const rule = key === undefined ? undefined : rules.get(key);
    if (!rule) throw new ArmError(404, "ResourceNotFound", `The authorization rule '${name}' of namespace '${this.ctx.namespace}' was not found.`);
    return rule;
  }

  hcRule(hc: HybridConnection, name: string): AuthRule {
    const key = findKey(hc.rules, name);
    const rule = key === undefined ? undefined : hc.rules.get(key);
    if (!rule) throw new ArmError(404, "ResourceNotFound", `The authorization rule '${name}' of hybrid connection '${hc.path}' was not found.`);
    return rule;
  }
}

/** The map key matching `name` case-insensitively (ARM names are case-insensitive); `then` runs on it. */
function findKey<V>(map: Map<string, V>, name: string, then?: (key: string) => void): string | undefined {
  const key = map.has(name) ? name : [...map.keys()].find((k) => k.toLowerCase() === name.toLowerCase());
  if (key !== undefined) then?.(key);
  return key;
}

async function body(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (!text.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.");
  }
  return parsed as Record<string, unknown>;
}

function props(b: Record<string, unknown>): Record<string, unknown> {
  const p = b.properties;
  if (p === undefined || p === null) return {};
  if (typeof p !== "object" || Array.isArray(p)) throw new ArmError(400, "InvalidRequestContent", "'properties' must be an object.");
  return p as Record<string, unknown>;
}

function putHc(entities: EntityStore, name: string, b: Record<string, unknown>): HybridConnection {
  const p = props(b);
  const rca = p.requiresClientAuthorization;
  const meta = p.userMetadata;
  if (rca !== undefined && typeof rca !== "boolean") throw new ArmError(400, "BadRequest", "'requiresClientAuthorization' must be a boolean.");
  if (meta !== undefined && meta !== null && typeof meta !== "string") throw new ArmError(400, "BadRequest", "'userMetadata' must be a string.");
  const existing = entities.get(name);
  if (existing && rca !== undefined && rca !== existing.requiresClientAuthorization) {
    throw new ArmError(400, "BadRequest", "'requiresClientAuthorization' cannot be changed after the hybrid connection is created.");
  }
  let hc: HybridConnection;
  try {
    hc = entities.upsert({ path: name, requiresClientAuthorization: rca });
  } catch (err) {
    throw new ArmError(400, "BadRequest", (err as Error).message);
  }
  // PUT replaces: metadata left out of the body is cleared.
  hc.userMetadata = typeof meta === "string" ? meta : undefined;
  return hc;
}

function putRule(rules: Map<string, AuthRule>, name: string, b: Record<string, unknown>): AuthRule {
  if (!RULE_NAME.test(name)) throw new ArmError(400, "BadRequest", `'${name}' is not a valid authorization rule name.`);
  const rights = props(b).rights;
  if (!Array.isArray(rights) || rights.length === 0 || !rights.every((r): r is Right => RIGHTS.includes(r as Right))) {
    throw new ArmError(400, "BadRequest", "'properties.rights' must be a non-empty array of 'Listen', 'Send' and 'Manage'.");
  }
  const unique = [...new Set(rights)];
  const key = findKey(rules, name);
  const existing = key === undefined ? undefined : rules.get(key);
  if (existing) {
    existing.rights = unique;
    return existing;
  }
  const rule = makeRule({ name, rights: unique });
  rules.set(name, rule);
  return rule;
}

function regenerate(entities: EntityStore, rule: AuthRule, b: Record<string, unknown>): AuthRule {
  const { keyType, key } = b;
  if (keyType !== "PrimaryKey" && keyType !== "SecondaryKey") {
    throw new ArmError(400, "BadRequest", "'keyType' must be 'PrimaryKey' or 'SecondaryKey'.");
  }
  if (key !== undefined && key !== null && (typeof key !== "string" || !/^[A-Za-z0-9+/=]{1,256}$/.test(key))) {
    throw new ArmError(400, "BadRequest", "'key' must be a base64 string.");
  }
  return entities.regenerate(rule, keyType, typeof key === "string" ? key : undefined);
}

export { denyArmCalls } from "./arm-faults.ts";

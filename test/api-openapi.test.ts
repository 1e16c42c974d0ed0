/**
 * The OpenAPI document matches the router: the same paths and methods, and a tour over real
 * sockets in which every documented status of every operation is produced — and nothing the
 * router answered on a documented operation is missing from the document.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { openApiDocument } from "../src/api/openapi.ts";
import { API_ROUTES, MAX_BODY_BYTES } from "../src/api/routes.ts";
import { assertNoSecrets, KEY_A, KEY_B, startApiStack, type ApiStack, type Seen } from "./support/api-stack.ts";

type Doc = { paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> };
const doc = openApiDocument() as unknown as Doc;
const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

function documented(): Map<string, Set<number>> {
  const ops = new Map<string, Set<number>>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      ops.set(`${method.toUpperCase()} ${path}`, new Set(Object.keys(op.responses ?? {}).map(Number)));
    }
  }
  return ops;
}

test("the document lists exactly the router's paths and methods", () => {
  const fromDoc = Object.entries(doc.paths)
    .map(([p, item]) => `${p} ${Object.keys(item).filter((m) => HTTP_METHODS.includes(m)).map((m) => m.toUpperCase()).sort().join(",")}`)
    .sort();
  const fromRouter = API_ROUTES.map((r) => `${r.path} ${[...r.methods].sort().join(",")}`).sort();
  expect(fromDoc).toEqual(fromRouter);
  expect((openApiDocument() as { openapi: string }).openapi).toBe("3.1.0");
  // Every $ref resolves.
  const text = JSON.stringify(openApiDocument());
  const components = (openApiDocument() as { components: Record<string, Record<string, unknown>> }).components;
  for (const [, kind, name] of text.matchAll(/"#\/components\/(\w+)\/(\w+)"/g)) expect(components[kind as string]?.[name as string]).toBeDefined();
});

let main: ApiStack;
let closedNet: ApiStack;
let keysLoading: ApiStack;
beforeAll(async () => {
  main = await startApiStack();
  closedNet = await startApiStack({ access: { allow: ["10.0.0.0/8"] } });
  keysLoading = await startApiStack({ waitForKeysFile: "/nonexistent/azhexgate-api-keys.txt" });
});
afterAll(async () => {
  assertNoSecrets(main);
  assertNoSecrets(closedNet);
  assertNoSecrets(keysLoading);
  await main.stop();
  await closedNet.stop();
  await keysLoading.stop();
});

test("every documented status of every operation is produced, and only documented ones", async () => {
  const s = main;
  const json = { "content-type": "application/json" };
  const big = JSON.stringify({ subdomain: "x".repeat(MAX_BODY_BYTES) });
  await s.call("GET", "/api/openapi.json");
  await s.call("GET", "/api/auth");
  // Happy paths.
  const t = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "tour-app" } })).json;
  await s.call("GET", "/api/tunnels", { key: KEY_A });
  await s.call("GET", `/api/tunnels/${t.id}`, { key: KEY_A });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: { session_id: t.session_id } });
  // 400 / 404 / 409 / 413 / 415.
  await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "!" } });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: {} });
  await s.call("GET", "/api/tunnels/404040404", { key: KEY_A });
  await s.call("DELETE", `/api/tunnels/${t.id}`, { key: KEY_B });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_B, body: { session_id: t.session_id } });
  await s.call("POST", "/api/tunnels", { key: KEY_B, body: { subdomain: "tour-app" } });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: { session_id: "stale" } });
  await s.call("POST", "/api/tunnels", { key: KEY_A, rawBody: big, headers: json });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, rawBody: big, headers: json });
  await s.call("POST", "/api/tunnels", { key: KEY_A, rawBody: "a=b", headers: { "content-type": "text/plain" } });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, rawBody: "a=b", headers: { "content-type": "text/plain" } });
  // 502: the relay is down.
  s.relayDown.on = true;
  await s.call("POST", "/api/tunnels", { key: KEY_A });
  await s.call("DELETE", `/api/tunnels/${t.id}`, { key: KEY_A });
  s.relayDown.on = false;
  s.relay.faults.deleteHc(t.hybrid_connection_name);
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: { session_id: t.session_id } });
  await s.call("POST", `/api/tunnels/${t.id}/token`, { key: KEY_A, body: { session_id: t.session_id, rejected: true } });
  // names: 409 while the tunnel uses it, 404 for another key and for no name, 204 once the tunnel is gone
  await s.call("POST", "/api/tunnels", { key: KEY_A, body: { subdomain: "tour-name" } });
  await s.call("DELETE", "/api/names/tour-name", { key: KEY_A });
  await s.call("DELETE", "/api/names/tour-name", { key: KEY_B });
  await s.call("DELETE", "/api/tunnels/tour-name", { key: KEY_A });
  await s.call("DELETE", "/api/names/tour-name", { key: KEY_A });
  await s.call("DELETE", "/api/names/tour-name", { key: KEY_A });
  await s.call("DELETE", `/api/tunnels/${t.id}`, { key: KEY_A });
  // The connect route (issue 16): 200 for the owner, 403 for another key, 404, 409 for an HTTP tunnel, 501, 502.
  const tcp = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: { kind: "tcp" } })).json;
  const http = (await s.call("POST", "/api/tunnels", { key: KEY_A, body: {} })).json;
  expect((await s.call("POST", `/api/tunnels/${tcp.id}/connect`, { key: KEY_A })).status).toBe(200);
  expect((await s.call("POST", `/api/tunnels/${tcp.id}/connect`, { key: KEY_B })).json.error.code).toBe("connect_forbidden");
  await s.call("POST", "/api/tunnels/no-such-tunnel/connect", { key: KEY_A });
  expect((await s.call("POST", `/api/tunnels/${http.id}/connect`, { key: KEY_A })).json.error.code).toBe("not_tcp_tunnel");
  s.sendUnsupported.on = true;
  await s.call("POST", `/api/tunnels/${tcp.id}/connect`, { key: KEY_A });
  s.sendUnsupported.on = false;
  s.relayDown.on = true;
  await s.call("POST", `/api/tunnels/${tcp.id}/connect`, { key: KEY_A });
  s.relayDown.on = false;

  const keyed: Array<[string, string, object?]> = [
    ["POST", "/api/tunnels", {}],
    ["GET", "/api/tunnels"],
    ["GET", "/api/tunnels/12345678"],
    ["DELETE", "/api/tunnels/12345678"],
    ["POST", "/api/tunnels/12345678/token", { session_id: "x" }],
    ["DELETE", "/api/names/some-name"],
    ["POST", "/api/tunnels/12345678/connect"],
  ];
  // 403 from a closed network.
  for (const [m, p, body] of keyed) await closedNet.call(m, p, { key: KEY_A, body });
  // 503 while the gateway's keys are still loading (a key it cannot know yet).
  for (const [m, p, body] of keyed) await keysLoading.call(m, p, { key: "maybe-in-the-vault-xxxxxxxx", body });
  // 401, then 429 once ten failures piled up.
  for (const [m, p, body] of keyed) await s.call(m, p, { key: "wrong-wrong-wrong-wrong", body });
  for (let i = 0; i < 5; i++) await s.call("GET", "/api/tunnels", { key: "wrong-wrong-wrong-wrong" });
  for (const [m, p, body] of keyed) await s.call(m, p, { key: "wrong-wrong-wrong-wrong", body }); // a valid key would still pass
  for (const [m, p, body] of keyed) await s.call(m, p, { key: KEY_A, body }); // ... as it does here: no 429 for it
  s.clock.now += 61_000;
  // 500: the registry fails.
  await s.registry.close();
  for (const [m, p, body] of keyed) await s.call(m, p, { key: KEY_A, body });

  const ops = documented();
  const produced = new Map<string, Set<number>>();
  for (const r of [...main.seen, ...closedNet.seen, ...keysLoading.seen] as Seen[]) {
    const op = `${r.method} ${r.route}`;
    if (!ops.has(op)) continue;
    if (!produced.has(op)) produced.set(op, new Set());
    produced.get(op)?.add(r.status);
  }
  const sorted = (m: Map<string, Set<number>>) => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort());
  expect(sorted(produced)).toEqual(sorted(ops));
});

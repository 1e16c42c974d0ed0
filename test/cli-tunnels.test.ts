/**
 * `azhexgate tunnels list|delete` and `start --qr` as child processes against a gateway child.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API_KEY, killAll, spawnCli, startGatewayChild } from "./support/cli-proc.ts";

afterEach(() => killAll());

test("tunnels list shows the key's tunnels; tunnels delete removes one; errors are one line", async () => {
  const gw = await startGatewayChild();
  const env = { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY };
  const created = (await fetch(`${gw.apiUrl}/api/tunnels`, {
    method: "POST",
    headers: { "x-azhexgate-apikey": API_KEY, "content-type": "application/json" },
    body: JSON.stringify({ local_port: 3000 }),
  }).then((r) => r.json())) as { id: string; public_url: string };

  const list = spawnCli(["tunnels", "list"], { env });
  expect(await list.exit()).toBe(0);
  const table = list.text().out;
  expect(table).toContain(created.id);
  expect(table).toContain(created.public_url);
  expect(table).not.toContain(API_KEY);

  const asJson = spawnCli(["tunnels", "list", "--json"], { env });
  expect(await asJson.exit()).toBe(0);
  expect((JSON.parse(asJson.text().out) as Array<{ id: string }>).map((t) => t.id)).toEqual([created.id]);

  const del = spawnCli(["tunnels", "delete", created.id], { env });
  expect(await del.exit()).toBe(0);
  expect(del.text().out.trim()).toBe(`deleted ${created.id}`);

  const again = spawnCli(["tunnels", "delete", created.id], { env });
  expect(await again.exit()).toBe(1);
  expect(again.text().err.trim().split("\n")).toHaveLength(1);
  expect(again.text().err).toContain("no longer exists");

  const badKey = spawnCli(["tunnels", "list"], { env: { ...env, AZHEXGATE_API_KEY: "wrong-key-wrong-key-0000" } });
  expect(await badKey.exit()).toBe(1);
  expect(badKey.text().err).toContain("AZHEXGATE_API_KEY");

  const noUrl = spawnCli(["tunnels", "list"], { env: { AZHEXGATE_API_KEY: API_KEY } });
  expect(await noUrl.exit()).toBe(2);
  expect(noUrl.text().err).toContain("AZHEXGATE_API_URL");
});

test("start --qr prints the public URL as a QR code after the banner", async () => {
  const app = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok") });
  try {
    const agent = spawnCli(["start", "--port", String(app.port), "--qr"]);
    await agent.waitOut(/^Public URL:/, 20_000);
    const qr = await agent.waitErr(/[▀▄█]/, 10_000);
    expect(qr.length).toBeGreaterThan(20);
  } finally {
    app.stop(true);
  }
});

test("a config file declares several tunnels; Ctrl+C deletes the ephemeral ones on the gateway", async () => {
  const gw = await startGatewayChild();
  const a = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("app A") });
  const b = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("app B") });
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-cfg-"));
  await Bun.write(join(dir, "azhexgate.toml"), `api_url = "${gw.apiUrl}"\n\n[[tunnels]]\nport = ${a.port}\n\n[[tunnels]]\nport = ${b.port}\nhost_header = "preserve"\n`);
  try {
    const agent = spawnCli(["start", "--json"], { env: { AZHEXGATE_API_KEY: API_KEY }, cwd: dir });
    const first = await agent.waitEvent((e) => e.event === "ready", 20_000);
    const second = await agent.waitEvent((e) => e.event === "ready" && e.public_url !== first.public_url, 20_000);
    const bodies = new Set([await (await fetch(String(first.public_url))).text(), await (await fetch(String(second.public_url))).text()]);
    expect(bodies).toEqual(new Set(["app A", "app B"]));
    const env = { AZHEXGATE_API_URL: gw.apiUrl, AZHEXGATE_API_KEY: API_KEY };
    const before = spawnCli(["tunnels", "list", "--json"], { env });
    expect(await before.exit()).toBe(0);
    expect(JSON.parse(before.text().out)).toHaveLength(2);
    agent.kill("SIGINT");
    expect(await agent.exit(15_000)).toBe(0);
    const after = spawnCli(["tunnels", "list", "--json"], { env });
    expect(await after.exit()).toBe(0);
    expect(JSON.parse(after.text().out)).toEqual([]);
  } finally {
    a.stop(true);
    b.stop(true);
  }
});

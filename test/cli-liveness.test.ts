/**
 * `azhexgate start --json` as a child process (embedded gateway + relay emulator) through the
 * relay's daily restart (close 1011 "NameRenewalFailed", relay-exceptions.md), injected over the
 * emulator's admin API: the JSON stream shows `reconnecting` (server_error, the relay's reason)
 * then `online` again within 10 s, exactly once per restart; requests keep working.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get, killAll, spawnCli, startOrigin } from "./support/cli-proc.ts";

const origins: Array<{ stop(force?: boolean): unknown }> = [];
afterEach(async () => {
  await killAll();
  for (const o of origins.splice(0)) o.stop(true);
});

test("the daily 1011 restart: --json shows reconnecting → online once per restart, and the tunnel keeps serving", async () => {
  const origin = startOrigin((req) => new Response(`hello from ${new URL(req.url).pathname}`));
  origins.push(origin);
  const cli = spawnCli(["start", "--port", String(origin.port), "--json", "--log-level", "debug"], { cwd: mkdtempSync(join(tmpdir(), "azhexgate-cli-")) });
  const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
  const url = String(ready.public_url);
  // the agent's debug log names the relay it is online at (the embedded emulator)
  const online = JSON.parse(await cli.waitErr(/"event":"online"/, 10_000)) as { relay: string };
  const admin = `http://${online.relay}/$emulator/faults`;
  expect(await (await get(`${url}/before`)).text()).toBe("hello from /before");

  const stateEvents = () => cli.events().filter((e) => e.event === "state");
  for (let i = 1; i <= 2; i++) {
    const t0 = Date.now();
    const res = await fetch(admin, { method: "POST", body: JSON.stringify({ action: "restartListeners" }) });
    expect(await res.json()).toEqual({ ok: true, result: 1 });
    const rc = await cli.waitEvent((e) => e.event === "state" && e.state === "reconnecting" && stateEvents().filter((x) => x.state === "reconnecting").length === i, 10_000);
    expect(rc).toMatchObject({ code: "server_error", tunnel_id: ready.tunnel_id, attempt: 1 });
    expect(String(rc.reason)).toContain("NameRenewalFailed");
    await cli.waitEvent((e) => e.event === "state" && e.state === "online" && stateEvents().filter((x) => x.state === "online").length === i, 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await (await get(`${url}/after-${i}`)).text()).toBe(`hello from /after-${i}`);
  }
  await Bun.sleep(2000); // no loop: nothing more happens on its own
  expect(stateEvents().map((e) => e.state)).toEqual(["reconnecting", "online", "reconnecting", "online"]);

  cli.kill("SIGINT");
  expect(await cli.exit()).toBe(0);
}, 60_000);

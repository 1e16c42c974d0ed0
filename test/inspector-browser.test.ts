/**
 * The inspector page in headless Chromium (Debian's chromium driven by playwright-core): requests
 * sent through the tunnel appear live (server-sent events), one is opened (headers, pretty JSON),
 * replayed, and replayed with an edited body; the replay results appear beside the original. The
 * filters narrow the list, and copy-as-curl gives a command that works. A screenshot is written
 * to test/artifacts/inspector.png.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifact, browserPerFile, waitCount } from "./support/browser.ts";
import { get, killAll, spawnCli } from "./support/cli-proc.ts";

const browser = browserPerFile();
afterEach(killAll);

test("requests appear live; one is opened, replayed and replayed with an edited body", async () => {
  let hits = 0;
  const origin = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      hits++;
      const url = new URL(req.url);
      const body = await req.text();
      if (url.pathname === "/webhook") {
        const event = JSON.parse(body || "{}") as { type?: string };
        return Response.json({ received: event.type ?? null, hit: hits });
      }
      return new Response(`page ${url.pathname}`, { headers: { "content-type": "text/plain" } });
    },
  });
  try {
    const cli = spawnCli(["start", String(origin.port), "--json", "--inspect-port", "0"], { cwd: mkdtempSync(join(tmpdir(), "azhexgate-inspb-")) });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    const inspect = String(ready.inspect_url);
    const page = await browser.context.newPage();
    const t0 = performance.now();
    await page.goto(inspect);
    await page.locator("#live", { hasText: "live" }).waitFor();
    const loadMs = performance.now() - t0;
    // the page's own load (navigation start → load event): one small self-contained file
    const navTiming = () => page.evaluate(() => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).loadEventEnd);
    const first = await navTiming();
    await page.reload(); // the first navigation also pays for a fresh renderer process
    await page.locator("#live", { hasText: "live" }).waitFor();
    const nav = await navTiming();
    console.log(`inspector page: load event after ${nav.toFixed(1)} ms (first navigation ${first.toFixed(1)} ms; live list connected after ${loadMs.toFixed(0)} ms)`);

    // sent after the page is open: they must arrive over the live stream, not on reload
    expect((await get(`${ready.public_url}/about`)).status).toBe(200);
    const hook = await get(`${ready.public_url}/webhook`, 5000, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "invoice.paid", amount: 42 }) });
    expect(await hook.json()).toMatchObject({ received: "invoice.paid" });
    await page.locator("#list tr").nth(1).waitFor();
    expect(await page.locator("#list tr td.path").allTextContents()).toEqual(["/webhook", "/about"]);

    // filters
    await page.selectOption("#f-method", "POST");
    await waitCount(page.locator("#list tr:not([hidden])"), 1);
    await page.selectOption("#f-method", "");
    await page.fill("#f-path", "about");
    expect(await page.locator("#list tr:not([hidden]) td.path").allTextContents()).toEqual(["/about"]);
    await page.fill("#f-path", "");

    // open the webhook: request headers and the pretty-printed JSON body
    await page.locator("#list tr", { hasText: "/webhook" }).click();
    await page.locator("#title", { hasText: "POST /webhook" }).waitFor();
    const reqBody = await page.locator("#detail section pre.body").first().textContent();
    expect(reqBody).toBe(JSON.stringify({ type: "invoice.paid", amount: 42 }, null, 2));
    expect(await page.locator("#detail").textContent()).toContain("content-type");

    // replay as is: the result appears beside the original response
    const before = hits;
    await page.click("#replay");
    await page.locator("#replay-result", { hasText: "Replay" }).waitFor();
    expect(await page.locator("#replay-result .status").textContent()).toBe("200");
    expect(await page.locator("#replay-result pre.body").textContent()).toContain('"received": "invoice.paid"');
    expect(hits).toBe(before + 1);
    await waitCount(page.locator("#responses > section"), 2);

    // replay with an edited body
    await page.click("#edit");
    await page.fill("#edit-body", JSON.stringify({ type: "invoice.refunded" }));
    await page.click("#edit-send");
    await page.locator("#replay-result", { hasText: "Replay (edited)" }).waitFor();
    expect(await page.locator("#replay-result pre.body").textContent()).toContain('"received": "invoice.refunded"');

    // copy as curl: the command reaches the app and gets the same answer
    await page.click("#copy-curl");
    const curl = await page.locator("#curl").inputValue();
    expect(curl).toContain(`curl -i -X POST 'http://localhost:${origin.port}/webhook'`);
    const run = Bun.spawn(["bash", "-c", `${curl} -s`], { stdout: "pipe", stderr: "pipe", timeout: 10_000 }); // async: the app runs in this process
    expect(await new Response(run.stdout).text()).toContain('"received":"invoice.paid"');

    // both replays joined the live list, marked as replays of the opened request; the mark links back
    const originalTitle = await page.locator("#title").textContent();
    const marks = page.locator("#list a.replay-of");
    await waitCount(marks, 2);
    const originalId = (await page.locator("#list tr.sel").getAttribute("data-id"))!;
    expect(await marks.first().textContent()).toBe(`↻ #${originalId}`);
    await page.locator("#list tr:has(a.replay-of) td").first().click(); // open the replay
    await page.locator("#replay-of").waitFor();
    await marks.first().click(); // back to the original
    await page.locator(`#list tr.sel[data-id="${originalId}"]`).waitFor();
    await waitCount(page.locator("#replay-of"), 0); // the original's detail (same title as its replay) has no replay note
    expect(await page.locator("#title").textContent()).toBe(originalTitle);

    await page.screenshot({ path: artifact("inspector.png"), fullPage: true });

    // a form body shows as its fields, a binary one as a hex dump
    await get(`${ready.public_url}/form`, 5000, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "name=Ada+L&lang=en" });
    await get(`${ready.public_url}/bin`, 5000, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array([0, 1, 2, 0xfe, 0xff, 0x41]) });
    await page.locator("#list tr", { hasText: "/bin" }).waitFor();
    await page.locator("#list tr", { hasText: "/form" }).click();
    await page.locator("#title", { hasText: "POST /form" }).waitFor();
    expect(await page.locator("#detail section").first().locator("table.hdrs").nth(1).innerText()).toBe("name\tAda L\nlang\ten");
    await page.locator("#list tr", { hasText: "/bin" }).click();
    await page.locator("#title", { hasText: "POST /bin" }).waitFor();
    expect(await page.locator("#detail section pre.hex").first().textContent()).toBe(`00000000  ${"00 01 02 fe ff 41".padEnd(48)}  .....A`);
    // generous bounds on a loaded 2-core box (locally the load event comes well under 100 ms)
    expect(nav).toBeLessThan(2_000);
    expect(loadMs).toBeLessThan(10_000);
    await page.close();
  } finally {
    origin.stop(true);
  }
}, 90_000);

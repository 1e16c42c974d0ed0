/**
 * Real web apps through the tunnel in headless Chromium, opened at their public URL:
 * - a page that opens a WebSocket back to its own origin and reads a server-sent event stream;
 * - a Vite dev server (npm `vite`, run under Node as users run it) with the default Host handling
 *   (`--host-header rewrite`: Vite sees Host localhost:PORT, which its `server.allowedHosts`
 *   check accepts), its HMR WebSocket connected and a file edit reaching the page.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchBrowser, type Browser } from "./support/browser.ts";
import { freePort, killAll, spawnCli, until } from "./support/cli-proc.ts";

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});
const spawned: Array<{ kill(): void; exited: Promise<number> }> = [];
afterEach(async () => {
  for (const p of spawned.splice(0)) {
    p.kill();
    await Promise.race([p.exited, Bun.sleep(5000)]);
  }
  await killAll();
});

const PAGE = `<!doctype html><html><body>
<p id="ws">ws: waiting</p><ul id="sse"></ul>
<script>
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
ws.onopen = () => ws.send("hello from " + location.host);
ws.onmessage = (e) => { document.getElementById("ws").textContent = "ws: " + e.data; ws.close(1000); };
const es = new EventSource("/events");
es.addEventListener("tick", (e) => {
  const li = document.createElement("li"); li.textContent = e.data; document.getElementById("sse").append(li);
  if (document.querySelectorAll("#sse li").length === 3) es.close();
});
</script></body></html>`;

test("a page served through the public URL talks WebSocket and SSE back to its own origin", async () => {
  let wsHost = "";
  const app = Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      const url = new URL(req.url);
      if (url.pathname === "/ws") {
        wsHost = req.headers.get("x-forwarded-host") ?? "";
        if (server.upgrade(req, { data: undefined })) return undefined;
      }
      if (url.pathname === "/events") {
        let n = 0;
        let timer: ReturnType<typeof setInterval>;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            timer = setInterval(() => {
              n++;
              c.enqueue(new TextEncoder().encode(`event: tick\ndata: tick ${n}\n\n`));
              if (n === 3) clearInterval(timer);
            }, 100);
          },
          cancel() {
            clearInterval(timer);
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
      }
      return new Response(PAGE, { headers: { "content-type": "text/html" } });
    },
    websocket: {
      message(ws, msg) {
        ws.send(`echo: ${msg}`);
      },
    },
  });
  try {
    const cli = spawnCli(["start", String(app.port), "--json", "--no-inspect"], { cwd: mkdtempSync(join(tmpdir(), "azhexgate-webapp-")) });
    const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
    const publicUrl = String(ready.public_url);
    const page = await browser.context.newPage();
    await page.goto(publicUrl);
    await page.locator("#sse li").nth(2).waitFor();
    expect(await page.locator("#sse li").allTextContents()).toEqual(["tick 1", "tick 2", "tick 3"]);
    await page.locator("#ws", { hasText: "echo" }).waitFor();
    expect(await page.locator("#ws").textContent()).toBe(`ws: echo: hello from ${new URL(publicUrl).host}`);
    expect(wsHost).toBe(new URL(publicUrl).host);
    await page.close();
  } finally {
    app.stop(true);
  }
}, 60_000);

test("a Vite dev server behind the tunnel loads through the public URL with its HMR WebSocket connected", async () => {
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-vite-"));
  writeFileSync(join(dir, "index.html"), `<!doctype html><html><body><h1 id="app">loading</h1><script type="module" src="/main.js"></script></body></html>`);
  writeFileSync(join(dir, "main.js"), `document.getElementById("app").textContent = "version 1";\n`);
  const port = freePort();
  const vite = Bun.spawn(["node", new URL("../node_modules/vite/bin/vite.js", import.meta.url).pathname, "--port", String(port), "--strictPort", "--clearScreen", "false"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  spawned.push(vite);
  let viteOut = "";
  void (async () => {
    for await (const c of vite.stdout) viteOut += new TextDecoder().decode(c);
  })();
  await until("Vite's ready line", async () => (/ready in/.test(viteOut) ? true : undefined), 30_000);

  const cli = spawnCli(["start", String(port), "--json", "--no-inspect"], { cwd: dir });
  const ready = await cli.waitEvent((e) => e.event === "ready", 20_000);
  const publicUrl = String(ready.public_url);
  const page = await browser.context.newPage();
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  await page.goto(publicUrl);
  await page.locator("#app", { hasText: "version 1" }).waitFor();
  // the Vite client logs "[vite] connected." once its HMR WebSocket is open
  await until("the HMR WebSocket", async () => (consoleLines.some((l) => l.includes("[vite] connected")) ? true : undefined), 20_000).catch((err) => {
    throw new Error(`${(err as Error).message}; page console: ${JSON.stringify(consoleLines)}; agent: ${JSON.stringify(cli.events().slice(-8))}; vite: ${viteOut.slice(-500)}`);
  });
  expect(consoleLines.join("\n")).not.toContain("failed to connect to websocket");
  // an edit on disk reaches the page over that WebSocket
  writeFileSync(join(dir, "main.js"), `document.getElementById("app").textContent = "version 2";\n`);
  await page.locator("#app", { hasText: "version 2" }).waitFor({ timeout: 20_000 });
  await page.close();
  // the request log saw the module served through the tunnel
  const events = cli.events().filter((e) => e.event === "request");
  expect(events.some((e) => e.path === "/main.js" && e.status === 200)).toBe(true);
}, 90_000);

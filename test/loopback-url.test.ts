/**
 * The embedded default gives each tunnel a loopback port (`http://127.0.0.1:PORT`) that reaches
 * it whatever the Host, for clients that cannot resolve `*.localhost`: Node's fetch (run as a real
 * Node child process) and a WebSocket upgrade made with Node's http module.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAll, spawnCli } from "./support/cli-proc.ts";

afterEach(killAll);

const cwd = () => mkdtempSync(join(tmpdir(), "azhexgate-loopback-"));

function app() {
  return Bun.serve<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      const u = new URL(req.url);
      if (u.pathname === "/ws" && server.upgrade(req, { data: undefined })) return undefined;
      return new Response(`app saw ${req.method} ${u.pathname}${u.search} host=${req.headers.get("host")}`);
    },
    websocket: {
      message(ws, msg) {
        ws.send(`echo:${msg}`);
      },
    },
  });
}

/** Runs `node -e script` and returns its stdout (bounded). */
async function node(script: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["node", "-e", script, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

const NODE_FETCH = `
fetch(process.argv[1], { signal: AbortSignal.timeout(10000) })
  .then(async (r) => console.log(r.status + " " + (await r.text())))
  .catch((e) => { console.log("failed: " + (e.cause?.code ?? e.message)); });
`;

/** A WebSocket handshake and one masked text frame "hi", with Node's http module; prints the echo. */
const NODE_WS = `
const http = require("node:http");
const crypto = require("node:crypto");
const u = new URL(process.argv[1]);
const req = http.request({ host: u.hostname, port: u.port, path: "/ws", headers: {
  Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13",
  "Sec-WebSocket-Key": crypto.randomBytes(16).toString("base64") } });
setTimeout(() => { console.log("timeout"); process.exit(1); }, 10000).unref();
req.on("response", (r) => { console.log("no upgrade: " + r.statusCode); process.exit(1); });
req.on("upgrade", (res, socket) => {
  const mask = crypto.randomBytes(4), data = Buffer.from("hi");
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | data.length]), mask, data.map((b, i) => b ^ mask[i % 4])]);
  socket.write(frame);
  socket.once("data", (buf) => {
    console.log(res.statusCode + " " + buf.subarray(2, 2 + (buf[1] & 0x7f)).toString());
    socket.destroy();
  });
});
req.end();
`;

test("each embedded tunnel gets a loopback URL: printed, in the ready event, reachable from Node's fetch and a Node WebSocket", async () => {
  const a = app();
  const b = app();
  try {
    const cli = spawnCli(["start", String(a.port), String(b.port), "--json"], { cwd: cwd() });
    const ra = await cli.waitEvent((e) => e.event === "ready" && e.local_url === `http://localhost:${a.port}`, 20_000);
    const rb = await cli.waitEvent((e) => e.event === "ready" && e.local_url === `http://localhost:${b.port}`, 20_000);
    expect(String(ra.loopback_url)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(String(rb.loopback_url)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ra.loopback_url).not.toBe(rb.loopback_url);

    // Node cannot resolve *.localhost: the public URL fails there, the loopback URL works
    const viaName = await node(NODE_FETCH, `${ra.public_url}/x`);
    expect(viaName.out).toMatch(/^failed: /);
    const viaA = await node(NODE_FETCH, `${ra.loopback_url}/hello?q=1`);
    expect(viaA.out.trim()).toBe(`200 app saw GET /hello?q=1 host=localhost:${a.port}`);
    const viaB = await node(NODE_FETCH, `${rb.loopback_url}/other`);
    expect(viaB.out.trim()).toBe(`200 app saw GET /other host=localhost:${b.port}`);
    // every path goes to the tunnel, /healthz included (the gateway's own probes stay on the main port)
    expect((await node(NODE_FETCH, `${ra.loopback_url}/healthz`)).out.trim()).toBe(`200 app saw GET /healthz host=localhost:${a.port}`);

    const ws = await node(NODE_WS, String(ra.loopback_url));
    expect(ws.out.trim()).toBe("101 echo:hi");

    // the request log shows those requests under tunnel a
    await cli.waitEvent((e) => e.event === "request" && e.path === "/hello?q=1" && e.tunnel_id === ra.tunnel_id);
    await cli.waitEvent((e) => e.event === "request" && e.kind === "ws" && e.tunnel_id === ra.tunnel_id);
    cli.kill("SIGINT");
    expect(await cli.exit()).toBe(0);
    // stopped with the process: nothing answers on the loopback port any more
    expect((await node(NODE_FETCH, String(ra.loopback_url))).out).toMatch(/^failed: ECONNREFUSED/);
  } finally {
    a.stop(true);
    b.stop(true);
  }
}, 60_000);

test("the human banner names the loopback URL, and it answers", async () => {
  const a = app();
  try {
    const cli = spawnCli(["start", String(a.port)], { cwd: cwd() });
    const line = await cli.waitOut(/^Loopback URL:/, 20_000);
    const url = line.split(/\s+/)[2]!;
    expect((await node(NODE_FETCH, `${url}/banner`)).out.trim()).toBe(`200 app saw GET /banner host=localhost:${a.port}`);
  } finally {
    a.stop(true);
  }
}, 60_000);

/**
 * Small probes of the relay's listener gesture for tests: open a control channel with Bun's
 * native WebSocket (header token, as the SDKs send it), or read the raw handshake status line
 * over a plain / TLS socket (the WebSocket API hides the status of a refused upgrade).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// tsconfig's DOM lib hides Bun's `new WebSocket(url, { headers, tls })` overload.
const BunWebSocket = WebSocket as unknown as new (url: string, options?: Bun.WebSocketOptions) => WebSocket;

export type ListenOutcome = { open: true; ws: WebSocket } | { open: false; code: number; reason: string };

/** Opens `ws(s)://…/$hc/{hc}?sb-hc-action=listen` with `ServiceBusAuthorization: token` (no header when ""). */
export function openListener(url: string, token: string, ca?: string, timeoutMs = 10_000): Promise<ListenOutcome> {
  return new Promise((resolve, reject) => {
    const opts: Bun.WebSocketOptions = token ? { headers: { ServiceBusAuthorization: token } } : {};
    if (ca) opts.tls = { ca };
    const ws = new BunWebSocket(url, opts);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`listener did not open or close within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.addEventListener("open", () => {
      clearTimeout(timer);
      resolve({ open: true, ws });
    });
    ws.addEventListener("close", (e) => {
      clearTimeout(timer);
      resolve({ open: false, code: e.code, reason: e.reason });
    });
  });
}

/** Closes a WebSocket and waits for the close to finish. */
export function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    ws.addEventListener("close", () => resolve(), { once: true });
    ws.close(1000);
  });
}

/**
 * Sends a WebSocket upgrade for `url` with the given headers over a raw socket and returns the
 * status code and the body text of the answer (e.g. 401 and the relay's description).
 */
export async function handshakeStatus(url: string, headers: Record<string, string> = {}, ca?: string, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const secure = u.protocol === "wss:" || u.protocol === "https:";
  const port = Number(u.port || (secure ? 443 : 80));
  const lines = [
    `GET ${u.pathname}${u.search} HTTP/1.1`,
    `Host: ${u.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64")}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ];
  let received = "";
  let timer: Timer | undefined;
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`handshake to ${u.host} timed out`)), timeoutMs);
    const finish = (socket: { end(): void }) => {
      const head = received.split("\r\n\r\n")[0] ?? "";
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? -1);
      const body = received.slice(head.length + 4);
      if (status === 101 || (length >= 0 && Buffer.byteLength(body) >= length)) {
        socket.end();
        resolve({ status, text: body });
        return true;
      }
      return false;
    };
    Bun.connect({
      hostname: u.hostname.replace(/^\[|\]$/g, ""),
      port,
      ...(secure ? { tls: ca ? { ca, serverName: u.hostname } : true } : {}),
      socket: {
        open(s) {
          s.write(lines.join("\r\n"));
        },
        data(s, chunk) {
          received += chunk.toString("latin1");
          finish(s);
        },
        close(s) {
          if (!finish(s)) reject(new Error(`connection closed before a full answer: ${JSON.stringify(received.slice(0, 200))}`));
        },
        error(_s, err) {
          reject(err);
        },
        connectError(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  }).finally(() => clearTimeout(timer));
}

/** A self-signed certificate for localhost / 127.0.0.1 made with openssl in a temp dir. */
export function selfSignedCert(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-cert-"));
  try {
    const r = spawnSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-days", "1", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"),
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr || r.error}`);
    return { cert: readFileSync(join(dir, "c.pem"), "utf8"), key: readFileSync(join(dir, "k.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

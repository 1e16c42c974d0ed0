/**
 * A TLS-terminating TCP front on loopback for tests: `Bun.listen` with a certificate, each
 * connection piped byte for byte to a plain-HTTP target (the gateway), Host headers untouched —
 * what a platform front end (App Service, Front Door) does in front of the gateway. Writes are
 * queued when a socket is full and flushed on drain. Plus `makeCert`: an openssl self-signed
 * certificate with the given DNS names.
 */
import type { Socket, TCPSocketListener } from "bun";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A self-signed certificate (CA:TRUE, so it can be its own trust anchor) for `names`. */
export function makeCert(names: string[]): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-doctor-cert-"));
  try {
    const r = spawnSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${names[0]}`,
        "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
        "-days", "90", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"),
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr || r.error}`);
    return { cert: readFileSync(join(dir, "c.pem"), "utf8"), key: readFileSync(join(dir, "k.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes `pem` to a temp file and returns its path (for `--ca FILE`). */
export function writeTemp(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "azhexgate-doctor-"));
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface Pipe {
  peer?: Socket<Pipe>;
  queue: Uint8Array[];
  closed: boolean;
  /** Bytes from the client that arrived before the upstream connection opened. */
  early: Uint8Array[];
}

function send(s: Socket<Pipe>, bytes: Uint8Array): void {
  if (s.data.queue.length) {
    s.data.queue.push(bytes.slice());
    return;
  }
  const n = s.write(bytes);
  if (n < bytes.length) s.data.queue.push(bytes.slice(Math.max(0, n)));
}

function flush(s: Socket<Pipe>): void {
  while (s.data.queue.length) {
    const head = s.data.queue[0]!;
    const n = s.write(head);
    if (n < head.length) {
      s.data.queue[0] = head.slice(Math.max(0, n));
      return;
    }
    s.data.queue.shift();
  }
  if (s.data.closed) s.end();
}

function endWhenFlushed(s: Socket<Pipe> | undefined): void {
  if (!s) return;
  s.data.closed = true;
  if (!s.data.queue.length) s.end();
}

export interface TlsFront {
  port: number;
  stop(): void;
}

export function startTlsFront(o: { cert: string; key: string; target: { hostname: string; port: number } }): TlsFront {
  const listener: TCPSocketListener<Pipe> = Bun.listen<Pipe>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: o.cert, key: o.key },
    socket: {
      open(down) {
        down.data = { queue: [], closed: false, early: [] };
        void Bun.connect<Pipe>({
          hostname: o.target.hostname,
          port: o.target.port,
          data: { queue: [], closed: false, early: [] },
          socket: {
            open(up) {
              up.data.peer = down;
              down.data.peer = up;
              for (const b of down.data.early.splice(0)) send(up, b);
            },
            data(up, bytes) {
              if (up.data.peer) send(up.data.peer, bytes);
            },
            drain: flush,
            close(up) {
              endWhenFlushed(up.data.peer);
            },
            error(up) {
              endWhenFlushed(up.data.peer);
            },
          },
        }).catch(() => down.end());
      },
      data(down, bytes) {
        if (down.data.peer) send(down.data.peer, bytes);
        else down.data.early.push(bytes.slice());
      },
      drain: flush,
      close(down) {
        endWhenFlushed(down.data.peer);
      },
      error(down) {
        endWhenFlushed(down.data.peer);
      },
    },
  });
  return { port: listener.port, stop: () => listener.stop(true) };
}

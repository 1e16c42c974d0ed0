/**
 * A byte stream to `host:port` through an HTTP proxy: TCP to the proxy, `CONNECT host:port`
 * (with `Proxy-Authorization` when the proxy URL had credentials), and on a 2xx answer either the
 * tunnel itself (ws://) or TLS run inside it with `socket.upgradeTLS` (wss://: the proxy sees
 * only ciphertext, the certificate is checked against the target's name). The CONNECT form is
 * RFC 9110 §9.3.6; it is what Microsoft's SDKs send through their proxies (https-proxy-agent in
 * Azure/azure-sdk-for-js core-rest-pipeline, `DefaultWebProxy` in azure-relay-dotnet).
 *
 * Failures are `ProxyError`s that name the proxy (credentials redacted), the target and, when the
 * proxy answered, its status: never a bare "connection reset".
 */
import type { Socket, TLSOptions } from "bun";
import type { ProxyConfig } from "./proxy.ts";

export type ProxyErrorKind = "unreachable" | "refused" | "protocol" | "tls";

export class ProxyError extends Error {
  override readonly name = "ProxyError";
  constructor(
    readonly kind: ProxyErrorKind,
    message: string,
    /** The proxy, e.g. `http://***@127.0.0.1:8888` (never credentials). */
    readonly proxy: string,
    readonly status?: number,
    readonly statusText?: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
  /** Retrying cannot help when the proxy says no on purpose (403 policy, 407 credentials). */
  get retryable(): boolean {
    return !(this.kind === "refused" && (this.status === 401 || this.status === 403 || this.status === 407));
  }
}

const MAX_HEAD = 16 * 1024;

function hint(status: number, auth: boolean): string {
  // tinyproxy answers wrong BasicAuth credentials with 401, others with 407
  if (status === 407 || status === 401) return auth ? " (the proxy did not accept the user and password in the proxy URL)" : " (the proxy wants a user and password: http://user:password@host:port)";
  if (status === 403) return " (the proxy does not allow this destination or port; ask for CONNECT to it to be allowed, or list the host in NO_PROXY)";
  if (status === 502 || status === 503 || status === 504) return " (the proxy could not reach the destination)";
  return "";
}

export interface StreamHandlers<C> {
  data(s: Socket<C>, d: Uint8Array): void;
  drain(s: Socket<C>): void;
  close(s: Socket<C>, err?: Error): void;
  end(s: Socket<C>): void;
  error(s: Socket<C>, err: Error): void;
}

export interface ProxyDialOptions<C> {
  proxy: ProxyConfig;
  /** The destination, as given to CONNECT. */
  hostname: string;
  port: number;
  /** Run TLS to the destination inside the tunnel (wss://, https://). */
  tls?: TLSOptions;
  data: C;
  /** The handlers of the finished stream. */
  socket: StreamHandlers<C>;
  onReady(s: Socket<C>): void;
  onFail(err: Error): void;
}

/** Dials through the proxy. The returned `terminate` drops whatever is open (for timeouts). */
export function dialThroughProxy<C>(o: ProxyDialOptions<C>): { terminate(): void } {
  const { proxy } = o;
  const target = `${o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname}:${o.port}`;
  let phase: "connect" | "tls" | "ready" | "done" = "connect";
  let raw: Socket<C> | undefined;
  let tlsSocket: Socket<C> | undefined;
  let head = Buffer.alloc(0);
  let closedOnce = false;

  const fail = (err: Error) => {
    if (phase === "done" || phase === "ready") return;
    phase = "done";
    tlsSocket?.terminate();
    raw?.terminate();
    o.onFail(err);
  };
  const forwardClose = (s: Socket<C>, err?: Error) => {
    if (closedOnce) return;
    closedOnce = true;
    o.socket.close(s, err);
  };

  const startTls = (s: Socket<C>) => {
    phase = "tls";
    const [, t] = s.upgradeTLS<C>({
      data: o.data,
      tls: o.tls!,
      socket: {
        handshake(t, ok, authErr) {
          if (phase !== "tls") return;
          if (!ok && (typeof o.tls !== "object" || o.tls.rejectUnauthorized !== false)) {
            fail(new ProxyError("tls", `TLS to ${target} through proxy ${proxy.display} failed: ${authErr?.message ?? "handshake failed"}`, proxy.display, undefined, undefined, authErr));
            return;
          }
          phase = "ready";
          o.onReady(t);
        },
        data(t, d) {
          if (phase === "ready") o.socket.data(t, d);
        },
        drain(t) {
          if (phase === "ready") o.socket.drain(t);
        },
        end(t) {
          if (phase === "ready") o.socket.end(t);
        },
        error(t, e) {
          if (phase === "ready") o.socket.error(t, e);
          else fail(new ProxyError("tls", `TLS to ${target} through proxy ${proxy.display} failed: ${e.message}`, proxy.display, undefined, undefined, e));
        },
        close(t, e) {
          if (phase === "ready") forwardClose(t, e);
          else fail(new ProxyError("tls", `TLS to ${target} through proxy ${proxy.display} failed: the connection closed during the handshake`, proxy.display));
        },
      },
    });
    tlsSocket = t;
  };

  const onHead = (s: Socket<C>, d: Uint8Array) => {
    head = Buffer.concat([head, d]);
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) {
      if (head.length > MAX_HEAD) fail(new ProxyError("protocol", `proxy ${proxy.display} sent an answer to CONNECT ${target} longer than ${MAX_HEAD} bytes`, proxy.display));
      return;
    }
    const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
    const m = /^HTTP\/\d(?:\.\d)? (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!m) return fail(new ProxyError("protocol", `proxy ${proxy.display} answered CONNECT ${target} with something that is not HTTP: "${statusLine.slice(0, 80)}"`, proxy.display));
    const status = Number(m[1]);
    const text = (m[2] ?? "").trim();
    if (status < 200 || status > 299) {
      return fail(
        new ProxyError(
          "refused",
          `proxy ${proxy.display} refused CONNECT ${target}: ${status}${text ? ` ${text}` : ""}${hint(status, proxy.authorization !== undefined)}`,
          proxy.display,
          status,
          text,
        ),
      );
    }
    const rest = head.subarray(end + 4);
    head = Buffer.alloc(0);
    if (o.tls) {
      if (rest.length) return fail(new ProxyError("protocol", `proxy ${proxy.display} sent data before the TLS handshake to ${target}`, proxy.display));
      startTls(s);
      return;
    }
    phase = "ready";
    o.onReady(s);
    if (rest.length) o.socket.data(s, new Uint8Array(rest));
  };

  const closedEarly = (e?: Error) =>
    fail(new ProxyError("unreachable", `proxy ${proxy.display} closed the connection before answering CONNECT ${target}${e ? `: ${e.message}` : ""}`, proxy.display, undefined, undefined, e));

  Bun.connect<C>({
    hostname: proxy.hostname,
    port: proxy.port,
    data: o.data,
    socket: {
      binaryType: "uint8array",
      open(s) {
        raw = s;
        if (phase === "done") return void s.terminate();
        s.setNoDelay?.(true);
        const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
        if (proxy.authorization) lines.push(`Proxy-Authorization: ${proxy.authorization}`);
        s.write(`${lines.join("\r\n")}\r\n\r\n`);
      },
      data(s, d) {
        if (phase === "connect") onHead(s, d);
        else if (phase === "ready" && !o.tls) o.socket.data(s, d);
        // phase tls: ciphertext, the TLS socket reads it
      },
      drain(s) {
        if (phase === "ready" && !o.tls) o.socket.drain(s);
      },
      end(s) {
        if (phase === "connect") return closedEarly();
        if (phase === "ready" && !o.tls) o.socket.end(s);
      },
      error(s, e) {
        if (phase === "connect") return closedEarly(e);
        if (phase === "ready" && !o.tls) o.socket.error(s, e);
      },
      close(s, e) {
        if (phase === "connect") return closedEarly(e);
        if (phase === "tls") return fail(new ProxyError("tls", `TLS to ${target} through proxy ${proxy.display} failed: the tunnel closed`, proxy.display));
        if (phase === "ready") forwardClose(o.tls && tlsSocket ? tlsSocket : s, e);
      },
      connectError(_s, e) {
        fail(new ProxyError("unreachable", `cannot reach proxy ${proxy.display} (${proxy.source}): ${e.message}`, proxy.display, undefined, undefined, e));
      },
    },
  }).catch((e: unknown) => fail(new ProxyError("unreachable", `cannot reach proxy ${proxy.display} (${proxy.source}): ${String(e)}`, proxy.display, undefined, undefined, e)));

  return {
    terminate() {
      if (phase !== "ready") phase = "done";
      tlsSocket?.terminate();
      raw?.terminate();
    },
  };
}

/** Errors of our WebSocket client: a refused handshake, a failed connection, a peer protocol violation. */

/** The server answered the upgrade with something other than 101. */
export class WsHandshakeError extends Error {
  override readonly name = "WsHandshakeError";
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly headers: Record<string, string>,
    readonly body: string,
    /** The header lines as sent (repeats kept apart), the body's bytes, and whether they were cut. */
    readonly raw: { headerList: Array<[string, string]>; bodyBytes: Uint8Array; truncated: boolean } = { headerList: Object.entries(headers), bodyBytes: new TextEncoder().encode(body), truncated: false },
  ) {
    super(`WebSocket handshake failed: ${status} ${statusText}`.trim());
  }
  /** The body text when there is one (our emulator puts the description there), else the reason phrase. */
  get description(): string {
    return this.body.trim() || this.statusText;
  }
}

/** The connection failed before an HTTP answer: `network` (TCP/TLS), `timeout`, or `protocol` (bad 101). */
export class WsConnectError extends Error {
  override readonly name = "WsConnectError";
  constructor(
    readonly kind: "network" | "timeout" | "protocol",
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** A protocol violation by the peer (close code 1002 / 1007 / 1009). */
export class WsProtocolError extends Error {
  override readonly name = "WsProtocolError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

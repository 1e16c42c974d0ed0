/**
 * The serving side of a TCP tunnel (`azhexgate tcp`, issue 16): each TCP stream the connecting
 * side opens becomes one `Bun.connect` to the target, bridged byte for byte (tcp-bridge.ts). A
 * target that refuses answers with RESET ORIGIN_UNREACHABLE and a sentence naming it; a target
 * that resets or fails mid-connection, with RESET CONNECTION_RESET.
 */
import { ResetCode } from "../tunnel/frame.ts";
import type { TunnelStream } from "../tunnel/stream.ts";
import { bridge, type Bridge, SocketEnd } from "./tcp-bridge.ts";

export interface TcpTarget {
  host: string;
  port: number;
}

/** Nothing listens there: by the error's code (Bun sets ECONNREFUSED on a failed Bun.connect), not its text. */
function refused(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return code === "ECONNREFUSED" || code === "ConnectionRefused";
}

/** Forwards one TCP stream to `target`; resolves when the connection is over. */
export async function forwardTcp(stream: TunnelStream, target: TcpTarget): Promise<void> {
  const label = `${target.host}:${target.port}`;
  let b: Bridge | undefined;
  let end: SocketEnd | undefined;
  try {
    const sock = await Bun.connect({
      hostname: target.host,
      port: target.port,
      allowHalfOpen: true,
      socket: {
        data: (_s, d) => b?.data(d),
        end: () => b?.end(),
        drain: () => end?.onDrain(),
        close: (_s, err) => {
          end?.onClose();
          b?.closed(err);
        },
        error: (_s, err) => b?.closed(err),
      },
    });
    end = new SocketEnd(sock);
  } catch (err) {
    if (refused(err)) stream.reset(ResetCode.ORIGIN_UNREACHABLE, `connection refused by ${label} on the serving side: is the service running?`);
    else stream.reset(ResetCode.ORIGIN_UNREACHABLE, `cannot connect to ${label} on the serving side: ${(err as Error)?.message ?? String(err)}`);
    return;
  }
  b = bridge(stream, end, { resetReason: (err) => `connection reset by ${label} on the serving side${err ? ` (${err.message})` : ""}` });
  await b.done;
}

/**
 * Hands one stream-level frame (not OPEN) to its stream; session.ts has already checked the
 * stream id and charged the session window. Pure dispatch and payload parsing, no I/O.
 */
import { FrameType, ResetCode, parseReset, parseVarints, parseWsClose, type Frame } from "./frame.ts";
import { decodeResponseHead, type HeadError } from "./head-binary.ts";
import { parseJsonHead, parseResponseHead } from "./head.ts";
import type { TunnelStream } from "./stream.ts";

/** Returns a reason when the frame is malformed enough to close the session, else null. */
export function deliverToStream(s: TunnelStream, f: Frame, version: number): string | null {
  const t = f.type;
  switch (t) {
    case FrameType.RESPONSE: {
      if (s.tcp) {
        s.reset(ResetCode.PROTOCOL, "RESPONSE on a TCP stream");
        return null;
      }
      const head = version >= 2 ? decodeResponseHead(f.payload) : parseJsonHead(f.payload, parseResponseHead);
      if ("error" in head) {
        if ((head as HeadError).tooLarge) s.reset(ResetCode.RESPONSE_HEAD_TOO_LARGE, `The local app's response headers are too large (${head.error}).`);
        else s.reset(ResetCode.PROTOCOL, head.error);
      } else s.handleResponse(head);
      return null;
    }
    case FrameType.DATA:
      s.handleData(f.payload);
      return null;
    case FrameType.END:
      s.handleEnd();
      return null;
    case FrameType.RESET: {
      const r = parseReset(f.payload) ?? { code: ResetCode.PROTOCOL, reason: "malformed reset" };
      s.handleReset(r.code, r.reason);
      return null;
    }
    case FrameType.WINDOW: {
      const v = parseVarints(f.payload, 1);
      if (!v || v[0] === 0) return "malformed window frame";
      s.handleWindow(v[0]!);
      return null;
    }
    case FrameType.WS_MESSAGE:
      s.handleWsMessage(f.payload);
      return null;
    case FrameType.WS_CLOSE: {
      const c = parseWsClose(f.payload) ?? { code: 1005, reason: "" };
      s.handleWsClose(c.code, c.reason);
      return null;
    }
  }
  return null;
}

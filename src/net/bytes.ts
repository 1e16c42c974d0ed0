/**
 * Byte helpers shared by the codecs and the streams (pure: no I/O). One place for joining parts,
 * which the WebSocket decoder, the tunnel's inbound body and the origin parser all need.
 */

const EMPTY = new Uint8Array(0);

/** `parts` joined into one array of `total` bytes; one part is returned as is (no copy), none as an empty array. */
export function concatBytes(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  if (parts.length === 0) return EMPTY;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

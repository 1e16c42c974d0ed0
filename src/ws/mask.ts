/**
 * Client-to-server WebSocket masking (RFC 6455 §5.3) at memory speed. The gateway (HC sender)
 * and the agent (HC listener) are WebSocket clients, so every byte they send is XOR-masked.
 * A JS loop masks at ~2 GB/s; this 140-byte WebAssembly module XORs 16 bytes per instruction
 * (SIMD128), ~10x faster. Frames are assembled in the module's memory (a scratch area reused
 * for every frame), masked there and written to the socket straight from it, which also saves
 * allocating a fresh buffer per frame. Falls back to JS where WebAssembly SIMD is missing.
 *
 * The module (hand-assembled; the WAT is below) exports `mem` and
 *   (func (export "mask") (param $p i32) (param $n i32) (param $k i32)
 *     (local $end i32) (local $v v128)
 *     (local.set $v (i32x4.splat (local.get $k)))
 *     (local.set $end (i32.add (local.get $p) (i32.and (local.get $n) (i32.const -16))))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $p) (local.get $end)))
 *       (v128.store (local.get $p) (v128.xor (v128.load (local.get $p)) (local.get $v)))
 *       (local.set $p (i32.add (local.get $p) (i32.const 16)))
 *       (br 0))))
 * It masks the largest multiple of 16 bytes; the caller masks the (< 16 byte) tail.
 */

const BODY = [
  0x02, 0x01, 0x7f, 0x01, 0x7b, // locals: $end i32, $v v128
  0x20, 0x02, 0xfd, 0x11, 0x21, 0x04, // $v = i32x4.splat($k)
  0x20, 0x00, 0x20, 0x01, 0x41, 0x70, 0x71, 0x6a, 0x21, 0x03, // $end = $p + ($n & -16)
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x01, // br_if 1 ($p >= $end)
  0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x04, 0xfd, 0x51, 0xfd, 0x0b, 0x00, 0x00, // store($p, load($p) ^ $v)
  0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, 0x0c, 0x00, // $p += 16; br 0
  0x0b, 0x0b, 0x0b, // end loop, end block, end func
];
const section = (id: number, content: number[]) => [id, content.length, ...content];
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00]), // type: (i32 i32 i32) -> ()
  ...section(3, [0x01, 0x00]), // one function of type 0
  ...section(5, [0x01, 0x00, 0x01]), // memory: 1 page, growable
  ...section(7, [0x02, 0x04, ...ascii("mask"), 0x00, 0x00, 0x03, ...ascii("mem"), 0x02, 0x00]),
  ...section(10, [0x01, BODY.length, ...BODY]),
]);

const LE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The key as the 32-bit word whose in-memory bytes are key[0..3]. */
export function keyWord(key: Uint8Array): number {
  return LE ? (key[0]! | (key[1]! << 8) | (key[2]! << 16) | (key[3]! << 24)) >>> 0 : ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
}

interface Wasm {
  mask: (p: number, n: number, k: number) => void;
  mem: WebAssembly.Memory;
}

function load(): Wasm | null {
  if (process.env.AZHEXGATE_NO_WASM_MASK === "1") return null;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(MODULE));
    return { mask: inst.exports.mask as Wasm["mask"], mem: inst.exports.mem as WebAssembly.Memory };
  } catch {
    return null; // no WebAssembly SIMD here: the JS loop masks
  }
}

const wasm = load();
/** Largest frame assembled in the scratch area; larger frames take the allocating path. */
export const SCRATCH_MAX = 8 << 20;
let view = wasm ? new Uint8Array(wasm.mem.buffer) : new Uint8Array(0);

/** True when frames are masked by the WebAssembly module (false: JS fallback). */
export const wasmMasking = wasm !== null;

/**
 * A scratch buffer of at least `size` bytes, reused by every call (its contents are only valid
 * until the next call). With WebAssembly it lives in the module's memory so `maskScratch` can
 * mask it in place. Returns null when `size` is over SCRATCH_MAX.
 */
export function scratch(size: number): Uint8Array | null {
  if (size > SCRATCH_MAX) return null;
  if (view.length < size) {
    if (wasm) {
      wasm.mem.grow(Math.ceil((size - view.length) / 65536));
      view = new Uint8Array(wasm.mem.buffer);
    } else view = new Uint8Array(Math.max(size, 64 * 1024));
  }
  return view;
}

/** XORs `buf[start, end)` with `key` (byte `start` uses key[0]), in place. `buf` must come from `scratch()` for the fast path. */
export function maskScratch(buf: Uint8Array, start: number, end: number, key: Uint8Array): void {
  let i = start;
  if (wasm && buf.buffer === wasm.mem.buffer) {
    const n = end - start;
    wasm.mask(buf.byteOffset + start, n, keyWord(key));
    i = start + (n & ~15);
  } else if (end - start >= 4) {
    // JS fallback: 32 bits at a time through a DataView (no alignment needed)
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const w = (key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!;
    const words = (end - start) >>> 2;
    for (let j = 0; j < words; j++, i += 4) dv.setInt32(i, dv.getInt32(i) ^ w);
  }
  for (let k = (i - start) & 3; i < end; i++, k = (k + 1) & 3) buf[i] = buf[i]! ^ key[k]!;
}

/**
 * One large transfer (its own process).
 *   bun bench/drivers/big.ts up|down URL HOST BYTES
 * Prints `RESULT {"bytes","seconds"}`; exits non-zero when the byte count is wrong.
 */
const [mode, base, host, bytesS] = process.argv.slice(2);
const bytes = Number(bytesS);
const headers: Record<string, string> = host && host !== "-" ? { Host: host } : {};
const MiB = 1 << 20;
const BLOCK = new Uint8Array(MiB).fill(120);
const t = performance.now();
let got: number;
if (mode === "down") {
  const res = await fetch(`${base}/down?n=${bytes}`, { headers, signal: AbortSignal.timeout(300_000) });
  got = 0;
  for await (const c of res.body!) got += c.length;
} else {
  let left = bytes;
  const body = new ReadableStream({
    pull(c) {
      if (left <= 0) return c.close();
      const n = Math.min(MiB, left);
      left -= n;
      c.enqueue(BLOCK.slice(0, n));
    },
  }, { highWaterMark: 0 });
  const res = await fetch(`${base}/up`, { method: "POST", headers, body, duplex: "half", signal: AbortSignal.timeout(300_000) } as RequestInit);
  got = Number(await res.text());
}
const seconds = (performance.now() - t) / 1000;
console.log(`RESULT ${JSON.stringify({ bytes: got, seconds })}`);
process.exit(got === bytes ? 0 : 1);

export {};

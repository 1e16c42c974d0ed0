/**
 * Micro-benchmark of the tunnel head codecs: encode + decode of a typical request head and
 * response head, v1 (JSON, as the session did it) vs v2 (binary, src/tunnel/head-binary.ts).
 * Single process, no I/O; figures are ns per head (encode + decode), best of REPS rounds.
 *
 *   bun bench/tools/head-codec.ts [ITERS=200000] [REPS=5]
 */
import { jsonPayload, parseJsonPayload } from "../../src/tunnel/frame.ts";
import { decodeOpenHead, decodeResponseHead, encodeOpenHead, encodeResponseHead } from "../../src/tunnel/head-binary.ts";
import { parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from "../../src/tunnel/head.ts";

const [iters = "200000", reps = "5"] = process.argv.slice(2);
const N = Number(iters);

/** What `requestHeadFrom` builds for a curl / browser GET (headers as the gateway sends them). */
const request: RequestHead = {
  kind: "http",
  method: "GET",
  target: "/api/items?page=2&sort=desc",
  headers: [
    ["user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"],
    ["accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
    ["accept-language", "en-GB,en;q=0.9"],
    ["accept-encoding", "gzip, deflate, br"],
    ["cookie", "session=3f9a1c2b7d; theme=dark"],
    ["sec-fetch-mode", "navigate"],
    ["x-forwarded-for", "203.0.113.7"],
    ["x-forwarded-proto", "https"],
    ["x-forwarded-host", "a1b2c3d4e5.azhexgate.example"],
  ],
  remote: { address: "203.0.113.7", port: 51234 },
};
const response: ResponseHead = {
  status: 200,
  headers: [
    ["content-type", "application/json; charset=utf-8"],
    ["content-length", "1234"],
    ["date", "Sun, 29 Nov 2026 18:00:00 GMT"],
    ["set-cookie", "a=1; Path=/; HttpOnly"],
    ["set-cookie", "b=2; Path=/; Secure"],
    ["cache-control", "no-store"],
  ],
};

const v1req = () => parseRequestHead(parseJsonPayload(jsonPayload(request)));
const v2req = () => decodeOpenHead(encodeOpenHead(request)!);
const v1res = () => parseResponseHead(parseJsonPayload(jsonPayload(response)));
const v2res = () => decodeResponseHead(encodeResponseHead(response)!);

function time(fn: () => unknown): number {
  let best = Infinity;
  for (let r = 0; r < Number(reps); r++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < N; i++) fn();
    best = Math.min(best, (Bun.nanoseconds() - t0) / N);
  }
  return best;
}

for (const f of [v1req, v2req, v1res, v2res]) time(f); // warm the JIT
const rows = [
  ["request head", jsonPayload(request).length, encodeOpenHead(request)!.length, time(v1req), time(v2req)],
  ["response head", jsonPayload(response).length, encodeResponseHead(response)!.length, time(v1res), time(v2res)],
] as const;
console.log("| head | v1 JSON bytes | v2 bytes | v1 ns (enc+dec) | v2 ns (enc+dec) | v2 / v1 |");
console.log("|---|---|---|---|---|---|");
for (const [name, b1, b2, t1, t2] of rows) console.log(`| ${name} | ${b1} | ${b2} | ${t1.toFixed(0)} | ${t2.toFixed(0)} | ${(t2 / t1).toFixed(2)} |`);

// Microsoft's hyco-https as an HTTP-mode listener against the local emulator (run under Node).
// env: EMU (ws://127.0.0.1:PORT), HC, KEYNAME, KEY. Prints READY once the control channel is open.
// Routes:  /{hc}/echo      → JSON { method, url, headers, len, sha256 } of the request
//          /{hc}/big?n=N   → N bytes of a deterministic pattern (application/octet-stream)
"use strict";
const crypto = require("crypto");
const https = require("hyco-https");

const uri = `${process.env.EMU}/$hc/${process.env.HC}?sb-hc-action=listen`;
const token = () => https.createRelayToken(uri, process.env.KEYNAME, process.env.KEY);

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

const server = https.createRelayedServer({ server: uri, token }, (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, "http://x");
    if (url.pathname.endsWith("/big")) {
      const data = pattern(Number(url.searchParams.get("n") || "0"));
      res.setHeader("content-type", "application/octet-stream");
      res.setHeader("x-peer", "hyco-https");
      res.end(data);
      return;
    }
    res.setHeader("content-type", "application/json");
    res.setHeader("x-peer", "hyco-https");
    res.end(
      JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        len: body.length,
        sha256: crypto.createHash("sha256").update(body).digest("hex"),
      }),
    );
  });
});
server.on("listening", () => console.log("READY"));
server.on("error", (e) => console.error("ERR", e && e.message));
server.listen();

// hyco-ws WebSocket sender peer (runs under Node): sends a text and a binary message, expects them
// echoed with the same type and content, then closes with 4001. Prints RESULT <json> and exits 0 on success.
// env: EMU (ws://127.0.0.1:PORT), HC, KEYNAME, KEY.
const WebSocket = require("hyco-ws");
const crypto = require("node:crypto");
const uri = `${process.env.EMU}/$hc/${process.env.HC}?sb-hc-action=connect`;
const token = WebSocket.createRelayToken(uri, process.env.KEYNAME, process.env.KEY);
const bin = crypto.randomBytes(100 * 1024);
const fail = (why) => {
  console.log(`FAIL ${why}`);
  process.exit(1);
};
setTimeout(() => fail("timeout"), 15000).unref();
const ws = WebSocket.relayedConnect(uri, token, () => {
  const got = [];
  ws.on("message", (data, flags) => {
    got.push({ binary: Boolean(flags && flags.binary), data });
    if (got.length === 1) {
      if (got[0].binary || String(got[0].data) !== "hello from hyco-ws") fail("text echo mismatch");
      ws.send(bin, { binary: true });
    } else if (got.length === 2) {
      if (!got[1].binary || !Buffer.from(got[1].data).equals(bin)) fail("binary echo mismatch");
      console.log(`RESULT ${JSON.stringify({ text: String(got[0].data), binaryLength: got[1].data.length })}`);
      ws.close(4001, "hyco bye");
    }
  });
  ws.on("close", (code) => {
    console.log(`CLOSED ${code}`);
    process.exit(got.length === 2 ? 0 : 1);
  });
  ws.send("hello from hyco-ws");
});
ws.on("error", (e) => fail(`error ${e.message}`));

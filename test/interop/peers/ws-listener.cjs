// hyco-ws WebSocket listener peer (runs under Node): echoes every message back with its type.
// env: EMU (ws://127.0.0.1:PORT), HC, KEYNAME, KEY. Prints READY, OPEN <protocol>, CLOSE <code> <reason>.
const WebSocket = require("hyco-ws");
const uri = `${process.env.EMU}/$hc/${process.env.HC}?sb-hc-action=listen`;
const token = WebSocket.createRelayToken(uri, process.env.KEYNAME, process.env.KEY);
const server = WebSocket.createRelayedServer({ server: uri, token }, (ws) => {
  ws.on("open", () => console.log(`OPEN ${ws.protocol || "-"}`));
  ws.on("message", (data, flags) => ws.send(data, { binary: Boolean(flags && flags.binary) }));
  ws.on("close", (code, reason) => console.log(`CLOSE ${code} ${reason || ""}`));
  ws.on("error", (e) => console.log(`WSERR ${e.message}`));
});
server.on("listening", () => console.log("READY"));
server.on("error", (e) => console.error(`ERR ${e && e.message}`));
process.on("SIGTERM", () => process.exit(0));

import { expect, test } from "bun:test";
import { createLogger } from "../src/log.ts";
import { createSasToken } from "../src/hc/sas.ts";

test("JSON lines with tag, event and fields; secrets never reach a line", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", sink: (l) => lines.push(l) }).child("gateway");
  const token = createSasToken("http://ns.servicebus.windows.net/hc", "rule", "secret-key", 2_000_000_000);
  log.info("tunnel created", { tunnel_id: "12345678", listener_token: token, url: `wss://ns/$hc/hc?sb-hc-token=${encodeURIComponent(token)}`, api_key: "k-123" });
  log.debug("not shown at info");
  expect(lines).toHaveLength(1);
  const obj = JSON.parse(lines[0]!);
  expect(obj).toMatchObject({ level: "info", tag: "gateway", event: "tunnel created", tunnel_id: "12345678", listener_token: "[redacted]", api_key: "[redacted]" });
  const sig = token.match(/sig=([^&]+)/)![1]!;
  expect(lines[0]).not.toContain(sig);
  expect(lines[0]).not.toContain(encodeURIComponent(sig));
  expect(lines[0]).not.toContain("k-123");
});

test("identical lines in quick succession are all written, each with its fields (an access log of repeated requests loses none)", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", sink: (l) => lines.push(l) }).child("access");
  for (let i = 0; i < 20; i++) log.info("request", { tunnel: "abc", method: "GET", path: "/same", status: 200 });
  expect(lines).toHaveLength(20);
  for (const l of lines) expect(JSON.parse(l)).toMatchObject({ event: "request", path: "/same", status: 200 });
});

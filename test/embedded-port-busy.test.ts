/**
 * `azhexgate start`'s embedded gateway on a taken port falls back to a free one — found by the
 * error's code (EADDRINUSE), not its text (issue 18: no classification by message).
 */
import { expect, test } from "bun:test";
import { startEmbeddedGateway } from "../src/embedded.ts";
import { createLogger } from "../src/log.ts";

test("the default port taken by another server: the embedded gateway starts on another port", async () => {
  const other = Bun.serve({ hostname: "127.0.0.1", port: 0, reusePort: false, fetch: () => new Response("someone else") });
  const e = await startEmbeddedGateway(createLogger({ level: "silent" }), other.port!);
  const port = Number(new URL(e.apiUrl).port);
  try {
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(other.port);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${other.port}/`)).text()).toBe("someone else");
  } finally {
    await e.stop();
    other.stop(true);
  }
});

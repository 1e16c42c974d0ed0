/**
 * The agent's API client decides whether a 409 is worth retrying from the gateway's Retry-After
 * mark, never from the words of the message: answers come from the gateway's own error boundary
 * (src/api/errors.ts errorResponse) served by a real Bun.serve.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ApiClientError, createApiClient } from "../src/agent/api-client.ts";
import { ApiError, errorResponse } from "../src/api/errors.ts";

let server: ReturnType<typeof Bun.serve>;
beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const sub = new URL(req.url).searchParams.get("case") ?? "";
      return req.json().then((b: { subdomain?: string }) => {
        if (b.subdomain === "race") return errorResponse(new ApiError(409, "subdomain_taken", 'subdomain "race" changed while being reclaimed.', { headers: { "retry-after": "1" } }));
        if (b.subdomain === "words") return errorResponse(new ApiError(409, "subdomain_taken", 'subdomain "words" is reserved by another API key; try again with another name.'));
        return errorResponse(new ApiError(409, "session_superseded", `taken over by a newer session ${sub}`, { headers: { "retry-after": "1" } }));
      });
    },
  });
});
afterAll(() => server.stop(true));

const attempt = (subdomain: string) =>
  createApiClient({ apiUrl: `http://127.0.0.1:${server.port}`, apiKey: "k" })
    .create({ subdomain })
    .then(() => undefined, (e: unknown) => e as ApiClientError);

test("subdomain_taken with Retry-After is retried (a reclaim race passes by itself)", async () => {
  const e = await attempt("race");
  expect(e).toBeInstanceOf(ApiClientError);
  expect(e).toMatchObject({ code: "subdomain_taken", retryable: true, status: 409 });
});

test("subdomain_taken without it is final, even when its sentence says to try again", async () => {
  expect(await attempt("words")).toMatchObject({ code: "subdomain_taken", retryable: false, status: 409, message: expect.stringContaining("try again") });
});

test("another 409 code is final whatever its headers", async () => {
  expect(await attempt("other")).toMatchObject({ code: "session_superseded", retryable: false });
});

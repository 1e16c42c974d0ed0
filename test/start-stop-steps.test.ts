/**
 * `azhexgate start`'s stop path (issue 18): a step that rejects (the embedded gateway's stop, the
 * inspector's, a tunnel's drain) must not leave the process running — every later step still runs
 * and the exit code is reached.
 */
import { expect, test } from "bun:test";
import { runSteps } from "../src/agent/start.ts";

test("a rejecting or throwing step is reported, the later steps run, and the sequence settles", async () => {
  const ran: string[] = [];
  const failed: string[] = [];
  const settled = await Promise.race([
    runSteps(
      [
        () => void ran.push("drain"),
        async () => {
          ran.push("inspector");
          throw new Error("inspector stop failed");
        },
        () => {
          ran.push("sync");
          throw new Error("sync step failed");
        },
        async () => void ran.push("embedded"),
      ],
      (err) => failed.push((err as Error).message),
    ).then(() => "settled"),
    Bun.sleep(5000).then(() => "hung"),
  ]);
  expect(settled).toBe("settled");
  expect(ran).toEqual(["drain", "inspector", "sync", "embedded"]);
  expect(failed).toEqual(["inspector stop failed", "sync step failed"]);
});

/**
 * The layers of src/ point only down (AGENTS.md): codecs do no I/O; the gateway and the agent
 * share only the protocol (src/tunnel, src/hc, src/ws, src/net and the shared access-policy
 * contract in src/policy); composition (the embedded default, the commands) sits at the top and
 * nothing below imports it. Read from the import statements of every source file.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const src = join(root, "src");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Project-relative paths of the src/ modules a file imports (static and dynamic imports, `import type` too). */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
    out.push(relative(root, resolve(dirname(file), m[1]!)));
  }
  return out;
}

const all = files(src).map((f) => ({ file: relative(root, f), deps: imports(f) }));
const under = (prefix: string) => all.filter((f) => f.file.startsWith(prefix));
const offending = (from: string, forbidden: string[]) =>
  under(from).flatMap((f) => f.deps.filter((d) => forbidden.some((x) => d.startsWith(x))).map((d) => `${f.file} → ${d}`));

describe("layers", () => {
  test("the tree is read (sanity: the rules below see real files and imports)", () => {
    expect(under("src/agent/").length).toBeGreaterThan(10);
    expect(under("src/gateway/").length).toBeGreaterThan(10);
    expect(all.find((f) => f.file === "src/commands/start.ts")?.deps).toContain("src/agent/start.ts");
  });

  test("the agent imports nothing of the gateway, the API, the control plane, the registry or the emulator", () => {
    expect(offending("src/agent/", ["src/gateway/", "src/api/", "src/control/", "src/registry/", "src/emulator/", "src/embedded.ts", "src/commands/"])).toEqual([]);
  });

  test("the gateway, the API and the control plane import nothing of the agent", () => {
    expect(offending("src/gateway/", ["src/agent/", "src/embedded.ts", "src/commands/"])).toEqual([]);
    expect(offending("src/api/", ["src/agent/", "src/gateway/server.ts", "src/embedded.ts", "src/commands/"])).toEqual([]);
    expect(offending("src/control/", ["src/agent/", "src/gateway/", "src/embedded.ts", "src/commands/"])).toEqual([]);
  });

  test("the shared protocol layers import only each other (and the process-wide log)", () => {
    const up = ["src/agent/", "src/gateway/", "src/api/", "src/control/", "src/registry/", "src/emulator/", "src/doctor/", "src/commands/", "src/embedded.ts", "src/cli.ts", "src/config.ts"];
    for (const layer of ["src/tunnel/", "src/hc/", "src/ws/", "src/net/", "src/policy/"]) expect(offending(layer, up)).toEqual([]);
  });

  test("codecs do no I/O: no sockets, files, processes or timers imported", () => {
    const codecs = ["src/tunnel/frame.ts", "src/ws/frame.ts", "src/hc/sas.ts", "src/hc/messages.ts", "src/hc/address.ts"];
    for (const c of codecs) {
      const text = readFileSync(join(root, c), "utf8");
      expect({ c, io: /from "node:(net|fs|child_process|http|https|tls|dgram)"|Bun\.(connect|listen|serve|spawn|file|write)\b/.test(text) }).toEqual({ c, io: false });
    }
  });

  test("composition sits at the top: only the commands import the embedded default", () => {
    const users = all.filter((f) => f.deps.includes("src/embedded.ts")).map((f) => f.file);
    expect(users.length).toBeGreaterThan(0);
    expect(users.filter((u) => !u.startsWith("src/commands/"))).toEqual([]);
  });
});

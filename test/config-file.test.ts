/**
 * `start` config files: unknown keys and wrong types fail naming the file, the key and the
 * expected shape (closest key for a typo); `azhexgate config check` validates a file; every key
 * the loader knows is documented in docs/configuration.md.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closestKey, readStartFile, START_FILE_KEYS, TUNNEL_KEYS } from "../src/agent/config-file.ts";
import { GATEWAY_SETTING_NAMES } from "../src/config.ts";
import { RELAY_SETTING_NAMES } from "../src/control/settings.ts";
import gatewayCommand from "../src/commands/gateway.ts";
import startCommand from "../src/commands/start.ts";
import tcpCommand from "../src/commands/tcp.ts";
import connectCommand from "../src/commands/connect.ts";
import { killAll, spawnCli } from "./support/cli-proc.ts";

afterEach(killAll);

const dir = () => mkdtempSync(join(tmpdir(), "azhexgate-cfgfile-"));

async function write(name: string, text: string): Promise<{ dir: string; file: string }> {
  const d = dir();
  const file = join(d, name);
  await Bun.write(file, text);
  return { dir: d, file };
}

describe("config file validation", () => {
  test("an unknown key (a typo) fails naming the file, the key and the closest known key", async () => {
    const { file } = await write("azhexgate.json", JSON.stringify({ tunnels: [{ port: 3000, subdomian: "my-app" }] }));
    const err = await readStartFile(file, "/").catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `config file ${file}: unknown key "tunnels[0].subdomian" (did you mean "tunnels[0].subdomain"?); a tunnel takes port, subdomain, host_header, local_host, local_https`,
    );
  });

  test("wrong types name the key and the expected shape", async () => {
    const cases: Array<[string, string]> = [
      ['port = "3000"\n', '"port" must be a whole number from 1 to 65535 (got "3000")'],
      ["[[tunnels]]\nport = 70000\n", '"tunnels[0].port" must be a whole number from 1 to 65535 (got 70000)'],
      ['[[tunnels]]\nport = 3000\nhost_header = "keep"\n', '"tunnels[0].host_header" must be one of "rewrite", "preserve" (got "keep")'],
      ['api_url = "ftp://x"\n', '"api_url" must be an http(s) URL string'],
      ["qr = 1\n", '"qr" must be true or false (got 1)'],
      ["tunnels = 3000\n", '"tunnels" must be a list of tables'],
      ["[[tunnels]]\nsubdomain = \"my-app\"\n", '"tunnels[0].port" is required'],
      ["Port = 3000\n", 'unknown key "Port" (did you mean "port"?)'],
    ];
    for (const [toml, want] of cases) {
      const { file } = await write("azhexgate.toml", toml);
      const msg = await readStartFile(undefined, file.replace(/\/azhexgate\.toml$/, "")).then(() => "no error", (e: Error) => e.message);
      expect(msg).toContain(`config file ${file}: `);
      expect(msg).toContain(want);
    }
  });

  test("a top-level port is one tunnel (the TOML shorthand users try first)", async () => {
    const { file } = await write("azhexgate.toml", 'port = 3000\nsubdomain = "my-app"\nhost_header = "preserve"\n');
    expect(await readStartFile(file, "/")).toMatchObject({ tunnels: [{ port: 3000, subdomain: "my-app" }], host_header: "preserve" });
  });

  test("closestKey: typos, case and dashes; nothing for far-off names", () => {
    const keys = Object.keys(START_FILE_KEYS);
    expect(closestKey("subdomian", keys)).toBe("subdomain");
    expect(closestKey("api-url", keys)).toBe("api_url");
    expect(closestKey("exitOnFail", keys)).toBe("exit_on_fail");
    expect(closestKey("banana", keys)).toBeUndefined();
  });
});

describe("azhexgate config check and start with a bad file", () => {
  test("config check: ok with a summary (exit 0); an unknown key exits 2 naming it", async () => {
    const good = await write("azhexgate.toml", "[[tunnels]]\nport = 3000\n\n[[tunnels]]\nport = 5173\nsubdomain = \"web-app\"\n");
    const ok = spawnCli(["config", "check"], { cwd: good.dir });
    expect(await ok.exit()).toBe(0);
    expect(ok.text().out.trim()).toBe(`${good.file}: ok (2 tunnels: port 3000, port 5173 as web-app)`);

    const bad = await write("cfg.json", JSON.stringify({ api_url: "http://localhost:8080", subdomian: "x" }));
    const no = spawnCli(["config", "check", bad.file], { cwd: bad.dir });
    expect(await no.exit()).toBe(2);
    expect(no.text().err.trim()).toBe(`azhexgate config check: config file ${bad.file}: unknown key "subdomian" (did you mean "subdomain"?); known keys are ${Object.keys(START_FILE_KEYS).join(", ")}`);

    const none = spawnCli(["config", "check"], { cwd: dir() });
    expect(await none.exit()).toBe(2);
    expect(none.text().err).toContain("no config file");
  });

  test("start refuses a file with an unknown key before doing anything (exit 2)", async () => {
    const bad = await write("azhexgate.json", JSON.stringify({ tunnels: [{ port: 3000, subdomian: "my-app" }] }));
    const cli = spawnCli(["start"], { cwd: bad.dir });
    expect(await cli.exit()).toBe(2);
    expect(cli.text().err).toContain(`config file ${bad.file}: unknown key "tunnels[0].subdomian" (did you mean "tunnels[0].subdomain"?)`);
    expect(cli.text().out).toBe("");
  });
});

test("docs/configuration.md documents every config-file key, start flag and gateway / relay variable", async () => {
  const doc = await Bun.file(new URL("../docs/configuration.md", import.meta.url)).text();
  const names = [
    ...Object.keys(START_FILE_KEYS),
    ...Object.keys(TUNNEL_KEYS),
    ...GATEWAY_SETTING_NAMES,
    ...RELAY_SETTING_NAMES,
    ...Object.entries(startCommand.args as Record<string, { type?: string }>).filter(([, d]) => d.type !== "positional").map(([f]) => `--${f}`),
    ...Object.keys(gatewayCommand.args as Record<string, unknown>).map((f) => `--${f}`),
  ];
  // `tcp` and `connect` (issue 16): every flag in their own sections.
  for (const [cmd, def] of [["tcp", tcpCommand], ["connect", connectCommand]] as const) {
    const section = doc.slice(doc.indexOf(`## \`azhexgate ${cmd}`), doc.indexOf("\n## ", doc.indexOf(`## \`azhexgate ${cmd}`) + 4));
    for (const [f, d] of Object.entries(def.args as Record<string, { type?: string }>)) {
      if (d.type !== "positional") expect({ cmd, flag: f, documented: section.includes(`\`--${f}`) }).toEqual({ cmd, flag: f, documented: true });
    }
  }
  for (const k of names) expect({ key: k, documented: doc.includes(`\`${k}`) }).toEqual({ key: k, documented: true });
});

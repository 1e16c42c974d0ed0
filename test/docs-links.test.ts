/**
 * Link check over README.md, AGENTS.md and docs/: every relative link and every backticked
 * repository path points at a file or folder that exists inside the repository; nothing points
 * outside it (`../…`, absolute paths such as /work/…). Web links (http/https) are not fetched.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(new URL("..", import.meta.url).pathname);

const TOP_DIRS = ["src", "docs", "test", "bench", "infra", ".ci"];
const TOP_FILES = new Set(["README.md", "AGENTS.md", "LICENSE", "Dockerfile", "package.json", "bun.lock", "bunfig.toml", "tsconfig.json"]);

/** Problems in one Markdown file's text (`file` is its path relative to the repository). */
export function linkProblems(file: string, text: string, exists: (repoPath: string) => boolean): string[] {
  const problems: string[] = [];
  const dir = dirname(file);
  const inside = (p: string) => !p.startsWith("..") && !p.startsWith("/");
  // 1. Markdown links and images: [text](target "title")
  for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1]!;
    if (/^(https?:|mailto:)/i.test(target) || target.startsWith("#")) continue;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      problems.push(`${file}: link to ${target} (only http(s) links and repository paths)`);
      continue;
    }
    const path = target.split("#")[0]!;
    if (path.startsWith("/")) {
      problems.push(`${file}: link to ${target} is an absolute path outside the repository`);
      continue;
    }
    const repoPath = join(dir, path);
    if (!inside(repoPath)) problems.push(`${file}: link to ${target} leaves the repository`);
    else if (!exists(repoPath)) problems.push(`${file}: link to ${target} is dead (${repoPath} does not exist)`);
  }
  // 2. Backticked paths: `../x`, `/work/x`, `src/…`, `docs/…`, `name.md`
  for (const m of text.matchAll(/`([^`\n]+)`/g)) {
    const tok = m[1]!.trim();
    if (/\s|[*{}|…<>$]/.test(tok)) continue; // commands, globs, templates
    if (tok.startsWith("../") || /^\/(work|home|tmp|Users)\//.test(tok)) {
      problems.push(`${file}: \`${tok}\` points outside the repository`);
      continue;
    }
    const top = tok.split("/")[0]!;
    if (tok.includes("/") && TOP_DIRS.includes(top) && !/^[a-z]+:\/\//.test(tok)) {
      const p = tok.replace(/[.,:;]$/, "");
      if (!exists(p)) problems.push(`${file}: \`${tok}\` does not exist in the repository`);
    } else if (/^[\w.-]+\.md$/.test(tok) && !TOP_FILES.has(tok)) {
      if (!exists(join(dir, tok)) && !exists(tok) && !exists(join("docs", tok))) problems.push(`${file}: \`${tok}\` does not exist in the repository`);
    }
  }
  return problems;
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
  return ["README.md", "AGENTS.md", ...docs];
}

const existsInRepo = (p: string) => existsSync(join(ROOT, p)) && !relative(ROOT, join(ROOT, p)).startsWith("..");

describe("documentation links", () => {
  test("README.md, AGENTS.md and docs/*.md: no reference outside the repository, no dead path", async () => {
    const problems: string[] = [];
    const files = markdownFiles();
    expect(files).toContain("docs/configuration.md");
    for (const f of files) problems.push(...linkProblems(f, await Bun.file(join(ROOT, f)).text(), existsInRepo));
    expect(problems).toEqual([]);
  });

  test("the checker catches what it is for", () => {
    const text = [
      "Design: `../shared/docs/design.md`, also [design](../shared/docs/design.md).",
      "See [gone](docs/nope.md), `src/nowhere.ts`, `hybrid-connections.md`, `/work/shared/docs/users.md`, [abs](/etc/passwd).",
      "Fine: [protocol](docs/protocol.md#frames), `src/cli.ts`, `test/*.test.ts`, [web](https://example.com/x), `azhexgate start 3000`.",
    ].join("\n");
    const found = linkProblems("README.md", text, existsInRepo);
    expect(found).toEqual([
      "README.md: link to ../shared/docs/design.md leaves the repository",
      "README.md: link to docs/nope.md is dead (docs/nope.md does not exist)",
      "README.md: link to /etc/passwd is an absolute path outside the repository",
      "README.md: `../shared/docs/design.md` points outside the repository",
      "README.md: `src/nowhere.ts` does not exist in the repository",
      "README.md: `hybrid-connections.md` does not exist in the repository",
      "README.md: `/work/shared/docs/users.md` points outside the repository",
    ]);
  });

  test("npm pack ships what the README links to (docs/ and LICENSE are in package.json files)", async () => {
    const pkg = (await Bun.file(join(ROOT, "package.json")).json()) as { files: string[]; license: string; repository?: unknown; bugs?: unknown; homepage?: string; keywords?: string[] };
    const readme = await Bun.file(join(ROOT, "README.md")).text();
    for (const m of readme.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)) {
      const target = m[1]!;
      if (/^https?:/.test(target)) continue;
      expect({ target, shipped: pkg.files.some((f) => target === f || target.startsWith(`${f}/`)) }).toEqual({ target, shipped: true });
    }
    expect(pkg.license).toBe("MIT");
    expect(await Bun.file(join(ROOT, "LICENSE")).text()).toContain("MIT License");
    expect(pkg).toMatchObject({ homepage: expect.stringMatching(/^https:\/\//), repository: expect.anything(), bugs: expect.anything() });
    expect(pkg.keywords?.length).toBeGreaterThan(3);
  });
});

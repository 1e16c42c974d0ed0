/**
 * A minimal Bicep reader for the infra tests (no Bicep compiler is installable here): splits a
 * .bicep file under infra/ into params, resources / modules (with their bodies), outputs and vars,
 * with `//` comments blanked and string literals kept; `props` / `get` walk an object literal.
 * Enough for this project's files, not a general parser.
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../..", import.meta.url).pathname;

/** The text with `//` comments blanked out (string literals, which may hold "//", kept). */
function stripComments(src: string): string {
  let out = "";
  let inStr = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (inStr) {
      out += c;
      if (c === "\\") out += src[++i] ?? "";
      else if (c === "'") inStr = false;
    } else if (c === "/" && src[i + 1] === "/") {
      while (i < src.length && src[i] !== "\n") i++;
      out += "\n";
    } else {
      if (c === "'") inStr = true;
      out += c;
    }
  }
  return out;
}

/** The balanced `{...}` (or `[...]`) starting at `open`, ignoring brackets inside strings. */
function balanced(text: string, open: number): string {
  const pairs: Record<string, string> = { "{": "}", "[": "]" };
  const stack: string[] = [];
  let inStr = false;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (inStr) {
      if (c === "\\") i++;
      else if (c === "'") inStr = false;
      continue;
    }
    if (c === "'") inStr = true;
    else if (c in pairs) stack.push(pairs[c]!);
    else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) return text.slice(open, i + 1);
    }
  }
  throw new Error(`unbalanced block at ${open}`);
}

export interface Decl {
  kind: "resource" | "module";
  symbol: string;
  /** `Microsoft.X/y@version` or the module path. */
  target: string;
  condition?: string;
  body: string;
}

export interface BicepFile {
  raw: string;
  text: string;
  params: Map<string, { type: string; secure: boolean; defaultValue?: string }>;
  decls: Decl[];
  outputs: Map<string, string>;
  vars: Map<string, string>;
}

const cache = new Map<string, BicepFile>();
export function bicep(rel: string): BicepFile {
  const hit = cache.get(rel);
  if (hit) return hit;
  const raw = readFileSync(join(root, "infra", rel), "utf8");
  const text = stripComments(raw);
  const params = new Map<string, { type: string; secure: boolean; defaultValue?: string }>();
  for (const m of text.matchAll(/((?:@\w+\([^\n]*\)\s*\n\s*)*)param (\w+) (\w+)(?: = ([^\n]+))?/g)) {
    params.set(m[2]!, { type: m[3]!, secure: /@secure\(\)/.test(m[1] ?? ""), defaultValue: m[4]?.trim() });
  }
  const decls: Decl[] = [];
  for (const m of text.matchAll(/^(?:@\w+\([^\n]*\)\s*\n)*(resource|module) (\w+) '([^']+)'(?: existing)? = (?:if \(([^\n]*)\) )?(\[for [^\n]*?: )?\{/gm)) {
    const open = m.index! + m[0].length - 1;
    decls.push({ kind: m[1] as Decl["kind"], symbol: m[2]!, target: m[3]!, condition: m[4], body: balanced(text, open) });
  }
  const outputs = new Map<string, string>();
  for (const m of text.matchAll(/^output (\w+) \w+ = ([^\n]+)/gm)) outputs.set(m[1]!, m[2]!.trim());
  const vars = new Map<string, string>();
  for (const m of text.matchAll(/^var (\w+) = ([^\n]+)/gm)) vars.set(m[1]!, m[2]!.trim());
  const f = { raw, text, params, decls, outputs, vars };
  cache.set(rel, f);
  return f;
}

export const resources = (f: BicepFile, type: string) => f.decls.filter((d) => d.kind === "resource" && d.target.startsWith(`${type}@`));
export const one = (f: BicepFile, type: string): Decl => {
  const list = resources(f, type);
  expect(list.map((d) => d.target.split("@")[0])).toEqual([type]);
  return list[0]!;
};
/** Top-level `key: value` pairs of an object literal (values as text). */
export function props(obj: string): Map<string, string> {
  const out = new Map<string, string>();
  const inner = obj.slice(1, -1);
  let i = 0;
  while (i < inner.length) {
    const m = /^[\s,]*(\w+|'[^']*'):\s*/.exec(inner.slice(i));
    if (!m) break;
    i += m[0].length;
    const start = i;
    let depth = 0;
    for (; i < inner.length; i++) {
      const c = inner[i]!;
      if (c === "'") {
        for (i++; i < inner.length && inner[i] !== "'"; i++) if (inner[i] === "\\") i++;
      } else if ("([{".includes(c)) depth++;
      else if (")]}".includes(c)) depth--;
      else if (depth === 0 && (c === "\n" || c === ",")) break;
    }
    out.set(m[1]!.replace(/'/g, ""), inner.slice(start, i).trim());
  }
  return out;
}
/** A property path inside a declaration body, e.g. get(decl, "properties", "siteConfig"). */
export function get(d: Decl | string, ...path: string[]): string | undefined {
  let cur: string | undefined = typeof d === "string" ? d : d.body;
  for (const key of path) cur = cur && cur.startsWith("{") ? props(cur).get(key) : undefined;
  return cur;
}

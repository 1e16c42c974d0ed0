/**
 * What citty leaves to us: unknown flags are an error (one line, exit 2) and repeatable flags
 * (`--port 3000 --port 4000`) keep every value.
 */
import type { ArgsDef } from "citty";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Throws a UsageError naming the first flag `def` does not know. */
export function rejectUnknownFlags(rawArgs: readonly string[], def: ArgsDef): void {
  const known = new Set<string>(["help", "h", "version", "v"]);
  for (const [name, d] of Object.entries(def)) {
    known.add(name);
    if (d.type === "boolean") known.add(`no-${name}`);
    for (const a of [(d as { alias?: string | string[] }).alias ?? []].flat()) known.add(a);
  }
  for (const raw of rawArgs) {
    if (raw === "--") break;
    if (!raw.startsWith("-") || raw === "-") continue;
    const name = raw.replace(/^--?/, "").split("=")[0]!;
    if (!known.has(name)) throw new UsageError(`unknown option "${raw.split("=")[0]}" (see --help)`);
  }
}

/** Every value given for `--name` (as `--name v` or `--name=v`), in order. */
export function allValues(rawArgs: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === `--${name}` && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

/** Prints `azhexgate <cmd>: message` and exits 2 (bad usage or configuration). */
export function usageExit(cmd: string, message: string): never {
  console.error(`azhexgate ${cmd}: ${message}`);
  process.exit(2);
}

/** Rejects unknown flags of `azhexgate <cmd>` with a one-line error and exit code 2. */
export function strictFlags(cmd: string, rawArgs: readonly string[], def: ArgsDef): void {
  try {
    rejectUnknownFlags(rawArgs, def);
  } catch (err) {
    usageExit(cmd, (err as Error).message);
  }
}

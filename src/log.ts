/**
 * One logger for the process (consola): short lowercase event names with fixed field names,
 * pretty in a terminal, one JSON object per line otherwise (or with format "json"). Every string
 * field passes through token redaction, so a signature can never reach a log line.
 */
import { createConsola, type ConsolaInstance, type LogObject } from "consola";
import { redactToken } from "./hc/sas.ts";

export type LogFields = Record<string, unknown>;
export type LogLevelName = "silent" | "error" | "warn" | "info" | "debug";

export interface Logger {
  error(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  debug(event: string, fields?: LogFields): void;
  /** A logger whose lines carry `tag` (the module). */
  child(tag: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevelName;
  format?: "pretty" | "json";
  /** Where JSON lines go (tests capture them); default stderr. */
  sink?: (line: string) => void;
}

const LEVELS: Record<LogLevelName, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

const SECRET_FIELD = /key|secret|password|token|signature/i;

/** Redacts token signatures in strings and drops fields whose name says they are secret. */
export function scrub(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k) && !/_id$|Id$|count|expires/i.test(k)) out[k] = "[redacted]";
    else if (typeof v === "string") out[k] = redactToken(v);
    else if (v instanceof Error) out[k] = redactToken(v.message);
    else out[k] = v;
  }
  return out;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const json = o.format === "json" || (o.format === undefined && !process.stderr.isTTY);
  const sink = o.sink ?? ((line: string) => process.stderr.write(`${line}\n`));
  const consola: ConsolaInstance = createConsola({
    level: LEVELS[o.level ?? "info"],
    // consola folds a line repeated within 1 s after the 5th into "(repeated N times)", late and
    // without its fields: identical access-log lines (same path, status, size) would be lost.
    throttle: 0,
    reporters: json
      ? [
          {
            log(obj: LogObject) {
              const [event, fields] = obj.args as [string, LogFields | undefined];
              sink(JSON.stringify({ time: obj.date.toISOString(), level: obj.type, tag: obj.tag || undefined, event, ...fields }));
            },
          },
        ]
      : undefined,
  });
  const make = (c: ConsolaInstance): Logger => {
    const emit = (fn: (...a: unknown[]) => void) => (event: string, fields?: LogFields) => {
      const f = fields ? scrub(fields) : undefined;
      if (json) fn(event, f);
      else fn(f && Object.keys(f).length ? `${event} ${Object.entries(f).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}` : event);
    };
    return {
      error: emit(c.error.bind(c)),
      warn: emit(c.warn.bind(c)),
      info: emit(c.info.bind(c)),
      debug: emit(c.debug.bind(c)),
      child: (tag) => make(c.withTag(tag)),
    };
  };
  return make(consola);
}

/** A logger that drops everything (tests, libraries used quietly). */
export const silentLogger: Logger = createLogger({ level: "silent", format: "json", sink: () => {} });

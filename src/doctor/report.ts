/**
 * How doctor prints: a human line per check (`✓` pass, `✗` fail, `!` warning, `-` skipped, with
 * `fix:` under each failure and warning) and a summary; or, with `--json`, one JSON object per
 * line (`{"event":"check",…}` per check, then one `{"event":"summary",…}`). Every text goes
 * through `scrub` first: the API key and listener tokens never reach the output.
 */
import type { CheckResult } from "./types.ts";

export interface Summary {
  ok: boolean;
  passed: number;
  failed: number;
  warnings: number;
  skipped: number;
  exit_code: number;
  ms: number;
}

export interface Reporter {
  begin(info: { api_url: string; domain?: string }): void;
  check(r: CheckResult): void;
  end(s: Summary): void;
}

const MARK = { pass: "✓", fail: "✗", warn: "!", skip: "-" } as const;

/** Replaces each secret (and any SAS signature) in `text`. */
export function scrubber(secrets: () => string[]): (text: string) => string {
  return (text) => {
    let out = text.replace(/(sig=)[^&\s"']+/gi, "$1REDACTED");
    for (const s of secrets()) if (s && s.length >= 4) out = out.split(s).join("***");
    return out;
  };
}

export function createReporter(json: boolean, write: (line: string) => void, scrub: (text: string) => string): Reporter {
  if (json) {
    return {
      begin() {},
      check(r) {
        write(scrub(JSON.stringify({ event: "check", name: r.name, status: r.status, ok: r.status !== "fail", detail: r.detail, fix: r.fix ?? null, ms: r.ms })));
      },
      end(s) {
        write(JSON.stringify({ event: "summary", ...s }));
      },
    };
  }
  return {
    begin(info) {
      write(scrub(`azhexgate doctor: ${info.api_url}${info.domain ? ` (tunnels at {id}.${info.domain})` : ""}`));
    },
    check(r) {
      write(scrub(`${MARK[r.status]} ${r.name.padEnd(16)} ${r.detail}`));
      if (r.fix && (r.status === "fail" || r.status === "warn")) write(scrub(`  fix: ${r.fix}`));
    },
    end(s) {
      const parts = [`${s.passed} passed`, `${s.failed} failed`];
      if (s.warnings) parts.push(`${s.warnings} warning${s.warnings === 1 ? "" : "s"}`);
      if (s.skipped) parts.push(`${s.skipped} skipped`);
      const verdict = !s.ok ? "Some checks failed" : s.skipped || s.warnings ? "No check failed" : "All checks passed";
      write(`${verdict}: ${parts.join(", ")} (${(s.ms / 1000).toFixed(1)} s)`);
    },
  };
}

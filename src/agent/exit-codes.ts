/**
 * The exit codes of `azhexgate start`, and which management-API failures are terminal (retrying
 * cannot help, so the agent stops with a message and one of these codes) rather than transient
 * (network errors, 5xx, 429: retried with backoff). README.md and docs/troubleshooting.md list them.
 */

export const EXIT = {
  /** Stopped by Ctrl+C / SIGTERM. */
  ok: 0,
  /** Any other permanent failure (only with --exit-on-fail). */
  failed: 1,
  /** Bad usage or configuration: flags, environment, config file, an --api-url that is no management API, a name the gateway refuses. */
  config: 2,
  /** The management API rejected the API key (401) or this machine's address (403). */
  auth: 3,
  /** The reserved name belongs to another API key, or another agent took this tunnel over. */
  nameTaken: 4,
  /** The tunnel was deleted on the gateway (`azhexgate tunnels delete`, or it expired) and --recreate was not given. */
  deleted: 5,
} as const;

/** The exit code a management-API error ends `start` with, or undefined when it is worth retrying. */
export function terminalExitCode(err: unknown): number | undefined {
  const e = err as { name?: string; code?: string; status?: number; retryable?: boolean };
  if (e?.name !== "ApiClientError") return undefined;
  if (e.code === "tunnel_deleted") return EXIT.deleted;
  if (e.status === 401 || e.status === 403) return EXIT.auth;
  if (e.code === "api_wrong_host" || e.code === "api_wrong_url" || e.status === 400) return EXIT.config;
  if (e.status === 409 && e.retryable === false) return EXIT.nameTaken;
  return undefined;
}

/**
 * `start --open`: opens a public URL in the browser with the platform's opener (xdg-open on
 * Linux and the BSDs, open on macOS, start on Windows). Never fails the command: without an
 * opener, or when it fails, a warning says so and names the URL.
 */
import type { Output } from "./output.ts";

/** The opener command line for `url` on `platform`. */
export function openerFor(url: string, platform: string = process.platform): string[] {
  if (platform === "darwin") return ["open", url];
  // `start` is a cmd.exe built-in; its first quoted argument is a window title, and cmd treats & as a separator
  if (platform === "win32") return ["cmd", "/c", "start", '""', url.replace(/&/g, "^&")];
  return ["xdg-open", url];
}

export async function openUrl(url: string, out: Output, env: Record<string, string | undefined> = process.env): Promise<void> {
  const cmd = openerFor(url);
  const path = Bun.which(cmd[0]!, { PATH: env.PATH ?? "" });
  if (!path) {
    out.warn("open_failed", `--open: no ${cmd[0]} found to open a browser; open ${url} yourself`, { url });
    return;
  }
  try {
    const p = Bun.spawn([path, ...cmd.slice(1)], { stdin: "ignore", stdout: "ignore", stderr: "ignore", env: env as Record<string, string> });
    p.unref();
    // xdg-open returns once the browser is started (or failed to start); never wait long
    const code = await Promise.race([p.exited, Bun.sleep(10_000).then(() => 0)]);
    if (code !== 0) out.warn("open_failed", `--open: ${cmd[0]} exited with code ${code}; open ${url} yourself`, { url });
  } catch (err) {
    out.warn("open_failed", `--open: could not run ${cmd[0]} (${(err as Error).message}); open ${url} yourself`, { url });
  }
}

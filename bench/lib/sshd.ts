/**
 * The ssh -R rows' OpenSSH pieces (main bench and WAN bench): a throwaway sshd on 127.0.0.1
 * (own host and user keys in `dir`, key login only, TCP forwarding on) and the `ssh -R` client's
 * command line.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, portOpen, run, spawn, type Child } from "./proc.ts";

/** `Bun.which` that also looks in the sbin folders (sshd lives in /usr/sbin). */
export const which = (cmd: string) => Bun.which(cmd, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` });

/** The user the bench runs as (sshd logins, nginx workers). */
export const SSH_USER = Bun.spawnSync(["id", "-un"]).stdout.toString().trim() || "root";

/** Keys, config and a running sshd in `dir` (which must exist); resolves once it accepts connections. */
export async function startSshd(dir: string): Promise<{ sshd: Child; port: number }> {
  await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")], 10_000);
  await run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "user_key")], 10_000);
  writeFileSync(join(dir, "authorized_keys"), await Bun.file(join(dir, "user_key.pub")).text());
  mkdirSync("/run/sshd", { recursive: true });
  const port = freePort();
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${dir}/host_key`, `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`, "PermitRootLogin prohibit-password", "PasswordAuthentication no",
      "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "AllowTcpForwarding yes", "LogLevel ERROR", "",
    ].join("\n"),
  );
  const sshd = await spawn("sshd", [which("sshd")!, "-D", "-e", "-f", join(dir, "sshd_config")], { probe: () => portOpen(port) });
  return { sshd, port };
}

/** `ssh -N -R 127.0.0.1:remotePort:127.0.0.1:originPort` to the sshd on `sshPort` with the keys in `dir`. */
export function sshReverse(dir: string, sshPort: number, remotePort: number, originPort: number): string[] {
  return [
    "ssh", "-N", "-i", join(dir, "user_key"), "-o", "StrictHostKeyChecking=no", "-o", `UserKnownHostsFile=${dir}/known_hosts`,
    "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-p", String(sshPort),
    "-R", `127.0.0.1:${remotePort}:127.0.0.1:${originPort}`, `${SSH_USER}@127.0.0.1`,
  ];
}

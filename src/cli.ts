#!/usr/bin/env -S bun --max-http-header-size=262144
/**
 * (The shebang raises Bun's 16 KiB header limit so 64 KB headers pass the gateway — also for the
 * embedded one of `start` — when run as `azhexgate` / `bunx azhexgate`; `bun src/cli.ts` needs the flag.)
 *
 * The `azhexgate` command. Only turns arguments into options; every subcommand lives in its own
 * file under src/commands/ and is imported lazily, so `azhexgate --help` loads almost nothing.
 */
import { defineCommand, runMain } from "citty";
import pkg from "../package.json" with { type: "json" };

const main = defineCommand({
  meta: { name: "azhexgate", version: pkg.version, description: pkg.description },
  subCommands: {
    doctor: () => import("./commands/doctor.ts").then((m) => m.default),
    config: () => import("./commands/config.ts").then((m) => m.default),
    gateway: () => import("./commands/gateway.ts").then((m) => m.default),
    login: () => import("./commands/login.ts").then((m) => m.default),
    logout: () => import("./commands/logout.ts").then((m) => m.default),
    relay: () => import("./commands/relay.ts").then((m) => m.default),
    start: () => import("./commands/start.ts").then((m) => m.default),
    tcp: () => import("./commands/tcp.ts").then((m) => m.default),
    connect: () => import("./commands/connect.ts").then((m) => m.default),
    tunnels: () => import("./commands/tunnels.ts").then((m) => m.default),
    whoami: () => import("./commands/whoami.ts").then((m) => m.default),
  },
});

await runMain(main);

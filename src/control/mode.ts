/**
 * Chooses the relay binding from the environment: Azure Relay when `AZHEXGATE_RELAY_NAMESPACE` is
 * set (azure.ts, imported lazily so local mode never loads the Azure SDK), else the local relay
 * emulator (factory injected by the caller). Local mode logs its one-line reason; Azure mode's
 * start line comes from createAzureBinding.
 */
import type { EmulatorHandle } from "../emulator/server.ts";
import type { BindingLog } from "./azure-keys.ts";
import type { AzureBindingOptions } from "./azure.ts";
import { readRelaySettings } from "./settings.ts";
import type { RelayBinding } from "./types.ts";

export interface RelayBindingOptions extends Omit<AzureBindingOptions, "log"> {
  log: BindingLog;
  /** Starts the local relay emulator (local mode only). */
  startLocalEmulator: () => Promise<EmulatorHandle>;
  /** The local binding over that emulator. */
  createLocal: (emu: EmulatorHandle) => RelayBinding;
}

/**
 * Reads the relay settings from `env` (throws RelaySettingsError on a bad value) and builds the
 * binding. In local mode `close()` also stops the emulator it started.
 */
export async function createRelayBinding(env: Record<string, string | undefined>, opts: RelayBindingOptions): Promise<RelayBinding> {
  const settings = readRelaySettings(env);
  if (settings.mode === "azure") {
    const { createAzureBinding } = await import("./azure.ts");
    const { startLocalEmulator: _s, createLocal: _c, ...azureOpts } = opts;
    return createAzureBinding(settings, azureOpts);
  }
  opts.log("relay.mode", { mode: "local", reason: settings.reason });
  const emu = await opts.startLocalEmulator();
  let binding: RelayBinding;
  try {
    binding = opts.createLocal(emu);
  } catch (err) {
    await emu.stop();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    mode: binding.mode,
    endpoint: binding.endpoint,
    provisioner: binding.provisioner,
    issuer: binding.issuer,
    senderToken: binding.senderToken,
    close() {
      closing ??= binding.close().finally(() => emu.stop());
      return closing;
    },
  };
}

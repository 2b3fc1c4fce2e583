// tessera-scheduler's command line. Reads /etc/tessera/scheduler.yaml (or --config), applies flags,
// and runs until SIGTERM/SIGINT.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { errorMessage, TesseraError } from "../errors.js";
import { packageRoot } from "../nvml/index.js";
import {
  DEFAULT_SCHEDULER_CONFIG_PATH,
  finishSchedulerConfig,
  loadSchedulerConfig,
  printSchedulerConfig,
  type SchedulerConfig,
  type SchedulerOverrides,
} from "./config.js";
import { Scheduler } from "./daemon.js";
import { createSchedulerLogger } from "./logger.js";

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return Number(v);
  };
}

interface Flags {
  config?: string;
  printConfig?: boolean;
  listen?: string;
  devInsecure?: boolean;
  socket?: string;
  logLevel?: string;
  allowSimulated?: boolean;
  agentsInsecure?: boolean;
  startupGrace?: number;
  nodeLeaseTtl?: number;
}

export function schedulerCommand(): Command {
  return new Command("tessera-scheduler")
    .description("Tessera's scheduler: a cluster view from the agents and fragmentation-aware placement on MIG slices")
    .version(version())
    .option(
      "-c, --config <file>",
      `config file (default ${DEFAULT_SCHEDULER_CONFIG_PATH}; missing there means all defaults)`,
    )
    .option("--print-config", "print the effective config (file + flags) as YAML and exit")
    .option("--listen <host:port>", "TCP listener (mTLS unless --dev-insecure); overrides listen.tcp")
    .option("--dev-insecure", "plaintext TCP for development; only on a loopback --listen")
    .option("--socket <path>", 'unix socket; "" disables (overrides listen.socket)')
    .option("--log-level <level>", "trace, debug, info, warn, error, fatal or silent")
    .option("--allow-simulated", "place on hosts whose NVML is Tessera's simulator (overrides nodes.allowSimulated)")
    .option("--agents-insecure", "plaintext to development agents on loopback (overrides agents.insecure)")
    .addOption(
      new Option("--startup-grace <ms>", "wait this long for agents to re-register before placing").argParser(
        nonNegativeInt("--startup-grace"),
      ),
    )
    .addOption(
      new Option("--node-lease-ttl <ms>", "registration lease when an agent asks for none").argParser(
        nonNegativeInt("--node-lease-ttl"),
      ),
    )
    .exitOverride();
}

function overridesOf(f: Flags): SchedulerOverrides {
  return {
    ...(f.listen !== undefined ? { listenTcp: f.listen } : {}),
    ...(f.devInsecure ? { devInsecure: true } : {}),
    ...(f.socket !== undefined ? { socket: f.socket } : {}),
    ...(f.logLevel !== undefined ? { logLevel: f.logLevel } : {}),
    ...(f.allowSimulated ? { allowSimulated: true } : {}),
    ...(f.agentsInsecure ? { agentsInsecure: true } : {}),
    ...(f.startupGrace !== undefined ? { startupGraceMs: f.startupGrace } : {}),
    ...(f.nodeLeaseTtl !== undefined ? { nodeLeaseTtlMs: f.nodeLeaseTtl } : {}),
  };
}

/** Runs the scheduler until a signal stops it; resolves with the exit code. */
export async function runScheduler(argv: readonly string[]): Promise<number> {
  const cmd = schedulerCommand();
  let flags: Flags;
  try {
    cmd.parse(argv as string[], { from: "user" });
    flags = cmd.opts<Flags>();
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
  let config: SchedulerConfig;
  try {
    config = finishSchedulerConfig((await loadSchedulerConfig(flags.config)).config, overridesOf(flags));
  } catch (err) {
    const code = err instanceof TesseraError ? ` [${err.code}]` : "";
    process.stderr.write(`tessera-scheduler: ${errorMessage(err)}${code}\n`);
    return 2;
  }
  if (flags.printConfig) {
    process.stdout.write(printSchedulerConfig(config));
    return 0;
  }
  const log = createSchedulerLogger({ level: config.log.level });
  const scheduler = new Scheduler({ config, log });
  let stopSignal: (signal: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopSignal = resolve;
  });
  const onTerm = () => stopSignal("SIGTERM");
  const onInt = () => stopSignal("SIGINT");
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  try {
    await scheduler.start();
  } catch (err) {
    const code = err instanceof TesseraError ? err.code : "TESSERA_INTERNAL";
    log.fatal({ err, code }, "scheduler failed to start");
    await scheduler.stop("failed start").catch(() => undefined);
    log.flush();
    return 1;
  }
  const signal = await stopped;
  await scheduler.stop(signal);
  process.off("SIGTERM", onTerm);
  process.off("SIGINT", onInt);
  log.flush();
  return 0;
}

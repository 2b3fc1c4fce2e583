// tessera-agent's command line: the per-host daemon. Reads /etc/tessera/agent.yaml (or --config), applies flags,
// and runs until SIGTERM/SIGINT; SIGHUP reloads the log level and health thresholds.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { errorMessage, TesseraError } from "../errors.js";
import { type ConfigOverrides, DEFAULT_CONFIG_PATH, finishConfig, loadAgentConfig, printConfig } from "./config.js";
import { Agent } from "./daemon.js";
import { createLogger } from "./logger.js";

/**
 * The version in the package.json above this file (src/ or dist/src/). Found without src/nvml,
 * whose loader would bring koffi into the main thread, which never calls NVML.
 */
function agentVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
        if (pkg.name === "tessera" && pkg.version) return pkg.version;
      } catch {
        // not ours; keep looking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return "unknown";
    dir = parent;
  }
}

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return Number(v);
  };
}

interface Flags {
  config?: string;
  printConfig?: boolean;
  devInsecure?: boolean;
  listen?: string;
  socket?: string;
  metricsListen?: string;
  stateDir?: string;
  logLevel?: string;
  readOnly?: boolean;
  library?: string;
  sim?: boolean;
  fabricSysfsRoot?: string;
  fabricProcRoot?: string;
  dynamicMig?: boolean;
  samplingInterval?: number;
  discardCorruptLeases?: boolean;
  nodeId?: string;
  scheduler?: string;
  schedulerInsecure?: boolean;
  advertise?: string;
}

export function agentCommand(): Command {
  return new Command("tessera-agent")
    .description("Tessera's node agent: NVML telemetry, MIG, leases and fabric health over gRPC and Prometheus")
    .version(agentVersion())
    .option("-c, --config <file>", `config file (default ${DEFAULT_CONFIG_PATH}; missing there means all defaults)`)
    .option("--print-config", "print the effective config (file + flags) as YAML and exit")
    .option("--listen <host:port>", "TCP listener (mTLS unless --dev-insecure); overrides listen.tcp")
    .option("--dev-insecure", "plaintext TCP for development; only on a loopback --listen")
    .option("--socket <path>", 'unix socket; "" disables (overrides listen.socket)')
    .option("--metrics-listen <host:port>", 'HTTP /metrics listener; "" disables (overrides metrics.listen)')
    .option("--state-dir <dir>", "lease checkpoint, MIG journals, fabric counters (overrides state.dir)")
    .option("--log-level <level>", "trace, debug, info, warn, error, fatal or silent")
    .option("--read-only", "make every mutating NVML call impossible (overrides nvml.readOnly)")
    .option("--library <path>", "NVML library to load (overrides nvml.library)")
    .option("--sim", "use Tessera's simulated driver (TESSERA_SIM_STATE chooses its state file)")
    .option("--fabric-sysfs-root <dir>", "sysfs to read the fabric from (a fixture tree in development)")
    .option("--fabric-proc-root <dir>", "procfs to read the boot id from")
    .option("--dynamic-mig", "let Allocate create GPU instances (overrides mig.dynamic)")
    .addOption(
      new Option("--sampling-interval <ms>", "sweep interval (overrides sampling.intervalMs)").argParser(
        positiveInt("--sampling-interval"),
      ),
    )
    .option("--discard-corrupt-leases", "set a corrupt lease checkpoint aside and start with no leases")
    .option("--node-id <id>", "this node's id (overrides nodeId; default: the host name)")
    .option(
      "--scheduler <address>",
      "register with this scheduler: host:port or unix:///path (overrides scheduler.address)",
    )
    .option("--scheduler-insecure", "register in plaintext with a development scheduler on loopback")
    .option("--advertise <address>", "where the scheduler reaches this agent (overrides scheduler.advertise)")
    .exitOverride();
}

async function overridesOf(f: Flags): Promise<ConfigOverrides> {
  // --sim only: the simulator's path comes from src/nvml (which loads koffi).
  const library = f.sim ? (await import("../nvml/loader.js")).simulatorLibraryPath() : f.library;
  return {
    ...(f.listen !== undefined ? { listenTcp: f.listen } : {}),
    ...(f.devInsecure ? { devInsecure: true } : {}),
    ...(f.socket !== undefined ? { socket: f.socket } : {}),
    ...(f.metricsListen !== undefined ? { metricsListen: f.metricsListen } : {}),
    ...(f.stateDir !== undefined ? { stateDir: f.stateDir } : {}),
    ...(f.logLevel !== undefined ? { logLevel: f.logLevel } : {}),
    ...(f.readOnly ? { readOnly: true } : {}),
    ...(library !== undefined ? { library } : {}),
    ...(f.fabricSysfsRoot !== undefined ? { fabricSysfsRoot: f.fabricSysfsRoot } : {}),
    ...(f.fabricProcRoot !== undefined ? { fabricProcRoot: f.fabricProcRoot } : {}),
    ...(f.dynamicMig ? { dynamicMig: true } : {}),
    ...(f.samplingInterval !== undefined ? { samplingIntervalMs: f.samplingInterval } : {}),
    ...(f.nodeId !== undefined ? { nodeId: f.nodeId } : {}),
    ...(f.scheduler !== undefined ? { schedulerAddress: f.scheduler } : {}),
    ...(f.schedulerInsecure ? { schedulerInsecure: true } : {}),
    ...(f.advertise !== undefined ? { advertise: f.advertise } : {}),
  };
}

/** Runs the agent until a signal stops it; resolves with the exit code. */
export async function runAgent(argv: readonly string[]): Promise<number> {
  const cmd = agentCommand();
  let flags: Flags;
  try {
    cmd.parse(argv as string[], { from: "user" });
    flags = cmd.opts<Flags>();
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
  let config: ReturnType<typeof finishConfig>;
  let overrides: ConfigOverrides;
  try {
    const loaded = await loadAgentConfig(flags.config);
    overrides = await overridesOf(flags);
    config = finishConfig(loaded.config, overrides);
  } catch (err) {
    const code = err instanceof TesseraError ? ` [${err.code}]` : "";
    process.stderr.write(`tessera-agent: ${errorMessage(err)}${code}\n`);
    return 2;
  }
  if (flags.printConfig) {
    process.stdout.write(printConfig(config));
    return 0;
  }
  const log = createLogger({ level: config.log.level });
  const agent = new Agent({
    config,
    configPath: flags.config ?? DEFAULT_CONFIG_PATH,
    overrides,
    log,
    version: agentVersion(),
    discardCorruptLeases: flags.discardCorruptLeases === true,
  });
  let stopSignal: (signal: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopSignal = resolve;
  });
  const onTerm = () => stopSignal("SIGTERM");
  const onInt = () => stopSignal("SIGINT");
  const onHup = () => {
    agent.reload().catch((err: unknown) => log.error({ err }, "reload failed"));
  };
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onInt);
  process.on("SIGHUP", onHup);
  try {
    await agent.start();
  } catch (err) {
    const code = err instanceof TesseraError ? err.code : "TESSERA_INTERNAL";
    log.fatal({ err, code }, "agent failed to start");
    await agent.stop("failed start").catch(() => undefined);
    log.flush();
    return 1;
  }
  const signal = await stopped;
  await agent.stop(signal);
  process.off("SIGTERM", onTerm);
  process.off("SIGINT", onInt);
  process.off("SIGHUP", onHup);
  log.flush();
  return 0;
}

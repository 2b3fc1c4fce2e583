// tessera-agent's lifecycle. Start: state directory, lease checkpoint (a corrupt one stops the start),
// the control thread (MIG recovery first), the sampler thread, lease reconciliation against the first
// sweep, then the listeners. Stop (SIGTERM): refuse new calls, end watch streams, let an apply in
// flight finish (the MIG manager's journal covers the rest), flush the checkpoint, stop NVML.
// Reload (SIGHUP): log level and health thresholds.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { leaseRecords } from "../diag/leases.js";
import { errorMessage } from "../errors.js";
import {
  CHECKPOINT_FILE,
  LeaseCheckpointCorruptError,
  readCheckpoint,
  setAsideCheckpoint,
} from "../ledger/checkpoint.js";
import { Ledger } from "../ledger/ledger.js";
import { EMPTY_LEDGER, type LedgerState } from "../ledger/types.js";
import type { RecoveryReport } from "../mig/manager.js";
import type { HealthService } from "../rpc/health.js";
import { certificateRoles, fixedRole, mtlsServerCredentials } from "../rpc/server-auth.js";
import { EventLog } from "../telemetry/event-log.js";
import type { HealthThresholds } from "../telemetry/health.js";
import { MetricsRenderer } from "../telemetry/metrics.js";
import { unpackSweep } from "../telemetry/sweep-pack.js";
import type { SweepResult } from "../telemetry/sweep-types.js";
import { AgentMetrics } from "./agent-metrics.js";
import { type AgentConfig, type ConfigOverrides, finishConfig, loadAgentConfig, parseHostPort } from "./config.js";
import { gatherHostFacts } from "./host-facts.js";
import { type ControlPort, LeaseService } from "./lease-service.js";
import type { Logger } from "./logger.js";
import { MetricsServer } from "./metrics-server.js";
import { MigOps } from "./mig-ops.js";
import { type NodeSnapshot, NodeState } from "./node-state.js";
import type { NvmlWorkerData } from "./nvml-worker.js";
import { leaseProto as leaseProtoOf, SnapshotViews } from "./proto.js";
import { type SchedulerRegistration, startSchedulerRegistration } from "./scheduler-registration.js";
import { bind, buildServer, newHealth, prepareSocketPath, SERVICE_NAME, secureSocket } from "./servers.js";
import { nodeAgentService } from "./service.js";
import { WatchHub } from "./watch-hub.js";
import { siblingModule, WorkerHost } from "./worker-host.js";
import { type FromWorker, WorkerGoneError } from "./worker-protocol.js";

export interface AgentEndpoints {
  readonly socket: string | undefined;
  /** `host:port` actually bound (port 0 resolved). */
  readonly tcp: string | undefined;
  readonly metrics: string | undefined;
}

export interface AgentOptions {
  readonly config: AgentConfig;
  /** The config file, re-read on SIGHUP (undefined: defaults, nothing to re-read). */
  readonly configPath: string | undefined;
  /** Command-line overrides, applied again on reload. */
  readonly overrides?: ConfigOverrides;
  readonly log: Logger;
  readonly version: string;
  readonly discardCorruptLeases: boolean;
}

const FIRST_SWEEP_TIMEOUT_MS = 60_000;
const MIG_RECOVERY_TIMEOUT_MS = 10 * 60_000;
const WORKER_RESTART_DELAY_MS = 1000;

function thresholdsOf(c: AgentConfig): HealthThresholds {
  return { xidHoldMs: c.health.xidHoldMs, temperatureMarginC: c.health.temperatureMarginC };
}

export class Agent {
  readonly #o: AgentOptions;
  readonly #log: Logger;
  #config: AgentConfig;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #nvmlThread: WorkerHost | undefined;
  #servers: grpc.Server[] = [];
  #health: HealthService | undefined;
  #metricsServer: MetricsServer | undefined;
  #registration: SchedulerRegistration | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #ledger: Ledger | undefined;
  #leases: LeaseService | undefined;
  #mig: MigOps | undefined;
  #hub: WatchHub | undefined;
  #state: NodeState | undefined;
  #lastSweepAtMs = 0;
  #lastSweep: SweepResult | undefined;
  #samplingMs: number;
  #firstSweep: ((s: NodeSnapshot) => void) | undefined;
  #socketPath: string | undefined;

  constructor(options: AgentOptions) {
    this.#o = options;
    this.#log = options.log;
    this.#config = options.config;
    this.#samplingMs = options.config.sampling.intervalMs;
  }

  get snapshot(): NodeSnapshot | undefined {
    return this.#state?.snapshot;
  }

  async start(): Promise<AgentEndpoints> {
    const c = this.#config;
    const log = this.#log;
    await mkdir(c.state.dir, { recursive: true, mode: 0o750 });
    const ledger = new Ledger(
      join(c.state.dir, CHECKPOINT_FILE),
      await this.#loadLedger(join(c.state.dir, CHECKPOINT_FILE)),
    );
    this.#ledger = ledger;
    const startedAtMs = Date.now();
    const hostFacts = gatherHostFacts();

    const eventLog = new EventLog(c.events.history, startedAtMs * 1000);
    const state = new NodeState(eventLog, thresholdsOf(c));
    this.#state = state;
    const hub = new WatchHub({
      log: eventLog,
      current: () => {
        const s = state.snapshot;
        return s
          ? { snapshot: s, node: views.node(s), leases: [...ledger.state.leases.values()].map(leaseProtoOf) }
          : undefined;
      },
      defaultIntervalMs: c.sampling.intervalMs,
      setSamplingInterval: (ms) => this.#setSamplingInterval(ms),
      maxQueuedSamples: c.watch.queuedSamples,
      maxWatchers: c.watch.maxWatchers,
      sample: (s) => views.sample(s),
    });
    this.#hub = hub;
    const metrics = new AgentMetrics({ watchers: () => hub.stats });
    // Sweeps feed metrics here so that /metrics costs nothing extra per scrape.
    this.#onSweepMetrics = (sweep) => {
      metrics.sweeps.inc();
      metrics.sweepDuration.observe(sweep.durationMs / 1000);
      metrics.samplerJitter.set(Math.max(0, sweep.startedAtMs - sweep.scheduledAtMs) / 1000);
      for (const e of sweep.nvmlErrors) metrics.nvmlErrors.inc({ code: e.code, operation: e.operation }, e.count);
      if (sweep.fabric) metrics.fabricSweepDuration.set(sweep.fabric.durationMs / 1000);
      metrics.stale.set(0);
    };
    this.#onStale = () => {
      metrics.stale.set(1);
      metrics.sweepTimeouts.inc();
    };
    eventLog.subscribe((e) => {
      metrics.events.inc({ kind: e.kind });
      const level = e.kind === "xid" || e.kind === "gpu_lost" || e.kind === "ecc" ? "warn" : "info";
      log[level]({ seq: e.seq, kind: e.kind, gpu: e.gpuIndex }, e.message);
    });

    const first = new Promise<NodeSnapshot>((resolve, reject) => {
      this.#firstSweep = resolve;
      setTimeout(
        () => reject(new Error(`no NVML sweep within ${FIRST_SWEEP_TIMEOUT_MS} ms`)),
        FIRST_SWEEP_TIMEOUT_MS,
      ).unref();
    });
    first.catch(() => undefined); // awaited below; a failed start must not also be an unhandled rejection
    await this.#startNvmlThread();
    const control: ControlPort = { request: (op, args, timeoutMs) => this.#nvmlRequest(op, args, timeoutMs) };
    const host = await hostFacts;
    const views = new SnapshotViews({
      nodeId: c.nodeId || host.hostname,
      agentVersion: this.#o.version,
      host,
      dynamicMig: c.mig.dynamic,
      labels: c.labels,
      startedAtMs,
    });
    const firstSnapshot = await first;
    metrics.info.set(
      {
        version: this.#o.version,
        simulated: String(firstSnapshot.sweep.driver.simulated),
        driver_version: firstSnapshot.sweep.driver.driverVersion,
      },
      1,
    );

    const leases = new LeaseService({
      ledger,
      control,
      snapshot: () => state.snapshot,
      dynamic: c.mig.dynamic,
      readOnly: c.nvml.readOnly,
      callTimeoutMs: c.nvml.callTimeoutMs,
      emit: (e) => state.emit(e),
      layoutsChanged: () => this.#refreshLayouts(),
      log,
    });
    this.#leases = leases;
    await leases.reconcileAtStart(firstSnapshot);
    this.#mig = new MigOps({
      control,
      readOnly: c.nvml.readOnly,
      planTimeoutMs: c.nvml.callTimeoutMs,
      applyTimeoutMs: c.nvml.callTimeoutMs * 10,
      leaseHolders: () => ledger.holders(),
      layoutsChanged: () => this.#refreshLayouts(),
    });

    state.onSnapshot((s) => {
      hub.publish(s);
      if (!s.stale) leases.checkVanished(s);
    });

    const impl = nodeAgentService({
      snapshot: () => state.snapshot,
      views,
      ledger,
      leases,
      mig: this.#mig,
      hub,
      metrics,
      log,
      stopping: () => this.#stopping,
      diagnostics: {
        libraryPath: c.nvml.library === "" ? undefined : c.nvml.library,
        procRoot: c.fabric.procRoot,
        ...(c.fabric.enabled ? { fabric: { sysfsRoot: c.fabric.sysfsRoot, procRoot: c.fabric.procRoot } } : {}),
        leases: () => leaseRecords(ledger.state),
        events: eventLog,
      },
    });
    const health = newHealth();
    this.#health = health;
    const denied = (path: string, code: grpc.status) =>
      metrics.rpcs.inc({ method: path.split("/").pop() ?? path, code: grpc.status[code] ?? String(code) });

    let socket: string | undefined;
    if (c.listen.socket !== "") {
      await prepareSocketPath(c.listen.socket);
      const server = buildServer({
        impl,
        health,
        log,
        authenticate: fixedRole("local socket", c.auth.socketRole),
        onDenied: denied,
      });
      await bind(server, `unix://${c.listen.socket}`, grpc.ServerCredentials.createInsecure());
      await secureSocket(c.listen.socket, c.listen.socketMode, c.listen.socketGroup, log);
      this.#servers.push(server);
      socket = c.listen.socket;
      this.#socketPath = socket;
    }
    let tcp: string | undefined;
    if (c.listen.tcp !== "") {
      const hp = parseHostPort(c.listen.tcp) as { host: string; port: number };
      const insecure = c.listen.devInsecure;
      const server = buildServer({
        impl,
        health,
        log,
        authenticate: insecure
          ? fixedRole("insecure loopback", c.auth.devInsecureRole)
          : certificateRoles(c.auth.rules),
        onDenied: denied,
      });
      const creds = insecure
        ? grpc.ServerCredentials.createInsecure()
        : await mtlsServerCredentials({ cert: c.tls.cert, key: c.tls.key, clientCa: c.tls.clientCa }, 5 * 60_000);
      const host = hp.host.includes(":") ? `[${hp.host}]` : hp.host;
      const port = await bind(server, `${host}:${hp.port}`, creds);
      if (insecure)
        log.warn({ tcp: `${host}:${port}` }, "plaintext gRPC on loopback (--dev-insecure): for development only");
      this.#servers.push(server);
      tcp = `${host}:${port}`;
    }

    let metricsAddress: string | undefined;
    if (c.metrics.listen !== "") {
      const hp = parseHostPort(c.metrics.listen) as { host: string; port: number };
      const hostname = c.metrics.hostnameLabel === "" ? undefined : views.static.nodeId;
      const metricsRenderer = new MetricsRenderer();
      this.#metricsServer = new MetricsServer({
        metrics,
        snapshotText: () => {
          const s = state.snapshot;
          if (!s) return undefined;
          return {
            key: `${s.version}/${ledger.writes}`,
            render: () =>
              metricsRenderer.render({
                gpus: s.sweep.gpus,
                health: s.health,
                fabric: s.fabric,
                leases: ledger.state.leases.values(),
                xids: (uuid) => state.xidStats(uuid),
                hostname,
                hostnameLabel: c.metrics.hostnameLabel || "Hostname",
              }),
          };
        },
        unhealthy: () => {
          const s = state.snapshot;
          if (!s) return "no sweep yet";
          return s.stale ? "sampler is stale: an NVML call has not returned" : undefined;
        },
        onError: (err) => log.error({ err }, "metrics request failed"),
      });
      const addr = await this.#metricsServer.listen(hp.host, hp.port);
      metricsAddress = `${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`;
    }

    this.#watchdog = setInterval(() => this.#checkSampler(), Math.min(1000, Math.max(100, c.sampling.timeoutMs / 4)));

    health.setStatus("", "SERVING");
    health.setStatus(SERVICE_NAME, "SERVING");
    // Last: the scheduler starts calling as soon as it hears from us.
    this.#registration = await startSchedulerRegistration({
      config: c,
      nodeId: views.static.nodeId,
      boundTcp: tcp,
      socket,
      log,
    });
    const endpoints = { socket, tcp, metrics: metricsAddress };
    log.info(
      {
        ...endpoints,
        simulated: firstSnapshot.sweep.driver.simulated,
        gpus: firstSnapshot.sweep.gpus.length,
        leases: ledger.state.leases.size,
        readOnly: c.nvml.readOnly,
        dynamicMig: c.mig.dynamic,
      },
      "agent ready",
    );
    return endpoints;
  }

  #onSweepMetrics: ((sweep: SweepResult) => void) | undefined;
  #onStale: (() => void) | undefined;
  #staleLogged = false;

  async #loadLedger(path: string): Promise<LedgerState> {
    try {
      return (await readCheckpoint(path)) ?? EMPTY_LEDGER;
    } catch (err) {
      if (!(err instanceof LeaseCheckpointCorruptError) || !this.#o.discardCorruptLeases) throw err;
      const aside = await setAsideCheckpoint(path, Date.now());
      this.#log.error(
        { path, aside },
        "corrupt lease checkpoint set aside (--discard-corrupt-leases): starting with no leases",
      );
      return EMPTY_LEDGER;
    }
  }

  /** Starts the NVML thread; it recovers interrupted MIG applies before it samples anything. */
  async #startNvmlThread(): Promise<void> {
    const c = this.#config;
    const data: NvmlWorkerData = {
      libraryPath: c.nvml.library === "" ? undefined : c.nvml.library,
      readOnly: c.nvml.readOnly,
      stateDir: c.state.dir,
      events: true,
      sampling: {
        intervalMs: this.#samplingMs,
        fabric: c.fabric.enabled
          ? {
              sysfsRoot: c.fabric.sysfsRoot,
              procRoot: c.fabric.procRoot,
              expectFile: c.fabric.expect === "" ? undefined : c.fabric.expect,
              intervalMs: c.fabric.intervalMs,
              stateDir: c.state.dir,
            }
          : undefined,
      },
    };
    this.#lastSweepAtMs = Date.now();
    this.#lastSweep = undefined;
    const thread = new WorkerHost({
      name: "NVML thread",
      url: siblingModule(import.meta.url, "nvml-worker"),
      workerData: data,
      onMessage: (m) => this.#onWorkerMessage(m),
      onExit: (why) => {
        this.#log.error({ why }, "NVML thread stopped; restarting it");
        setTimeout(() => {
          if (this.#stopping) return;
          this.#startNvmlThread().catch((err: unknown) => this.#log.error({ err }, "cannot restart the NVML thread"));
        }, WORKER_RESTART_DELAY_MS).unref();
      },
    });
    this.#nvmlThread = thread;
    const recovery = await thread.request<RecoveryReport[]>("init", null, MIG_RECOVERY_TIMEOUT_MS);
    for (const r of recovery) {
      this.#log.warn({ gpu: r.gpuIndex, outcome: r.outcome }, r.message);
      this.#state?.emit({
        kind: "mig",
        atMs: Date.now(),
        gpuIndex: r.gpuIndex,
        gpuUuid: r.gpuUuid,
        message: r.message,
        detail: { type: "mig", change: `recovery: ${r.outcome}` },
      });
    }
  }

  #nvmlRequest<T>(op: string, args: unknown, timeoutMs: number): Promise<T> {
    const thread = this.#nvmlThread;
    if (!thread) return Promise.reject(new WorkerGoneError("NVML thread", "not started"));
    return thread.request<T>(op, args, timeoutMs);
  }

  #onWorkerMessage(m: Exclude<FromWorker, { kind: "response" }>): void {
    const state = this.#state;
    if (!state) return;
    switch (m.kind) {
      case "sweep": {
        this.#lastSweepAtMs = Date.now();
        let result: SweepResult;
        try {
          result = unpackSweep(m.packed, this.#lastSweep);
        } catch (err) {
          // A restarted sampler starts over without "same" parts; until then this sweep is skipped.
          this.#log.warn({ err: errorMessage(err) }, "sweep skipped");
          return;
        }
        this.#lastSweep = result;
        if (this.#staleLogged) {
          this.#staleLogged = false;
          this.#log.info(
            { sweep: result.sweep, durationMs: result.durationMs, slowest: result.slowestCall },
            "sampler recovered",
          );
        }
        const snapshot = state.ingestSweep(result);
        this.#onSweepMetrics?.(result);
        if (this.#firstSweep) {
          this.#firstSweep(snapshot);
          this.#firstSweep = undefined;
        }
        return;
      }
      case "nvml-event":
        state.ingestNvmlEvent(m.event);
        if (m.event.typeNames.includes("migConfigChange")) this.#refreshLayouts();
        return;
      case "log":
        this.#log[m.level](m.fields, m.msg);
        return;
      case "stopped":
        return;
    }
  }

  /** Marks the snapshot stale when the sampler misses its deadline (a hung NVML call). */
  #checkSampler(): void {
    const c = this.#config;
    const deadline = Math.max(c.sampling.timeoutMs, this.#samplingMs * 2);
    if (Date.now() - this.#lastSweepAtMs < deadline) return;
    const s = this.#state?.snapshot;
    if (!s || s.stale) return;
    this.#state?.markStale();
    this.#onStale?.();
    this.#staleLogged = true;
    this.#log.warn(
      { lastSweep: s.sweep.sweep, sinceMs: Date.now() - this.#lastSweepAtMs, timeoutMs: deadline },
      "sampler missed its deadline: an NVML call is hanging; serving the last snapshot, marked stale",
    );
  }

  #setSamplingInterval(ms: number): void {
    this.#samplingMs = ms;
    this.#nvmlThread?.request("set-interval", { intervalMs: ms }, 10_000).catch((err: unknown) => {
      this.#log.warn({ err: errorMessage(err), intervalMs: ms }, "cannot change the sampling interval now");
    });
  }

  #refreshLayouts(): void {
    this.#nvmlThread?.request("refresh-layouts", null, 10_000).catch((err: unknown) => {
      this.#log.debug({ err: errorMessage(err) }, "layout refresh request not answered");
    });
  }

  /** SIGHUP: re-read the config; log level and health thresholds take effect, the rest needs a restart. */
  async reload(): Promise<void> {
    if (this.#o.configPath === undefined) {
      this.#log.info("reload: no config file to re-read");
      return;
    }
    let next: AgentConfig;
    try {
      next = finishConfig((await loadAgentConfig(this.#o.configPath)).config, this.#o.overrides ?? {});
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, "reload failed: keeping the running config");
      return;
    }
    const prev = this.#config;
    this.#log.level = next.log.level;
    this.#state?.setThresholds(thresholdsOf(next));
    const reloaded = { ...prev, log: next.log, health: next.health };
    const ignored = Object.keys(next).filter(
      (k) =>
        k !== "log" &&
        k !== "health" &&
        JSON.stringify(next[k as keyof AgentConfig]) !== JSON.stringify(prev[k as keyof AgentConfig]),
    );
    this.#config = reloaded;
    this.#log.info({ logLevel: next.log.level, health: next.health, needRestart: ignored }, "config reloaded");
  }

  /** Graceful stop; safe to call more than once. */
  stop(reason: string): Promise<void> {
    this.#stopped ??= this.#stop(reason);
    return this.#stopped;
  }

  async #stop(reason: string): Promise<void> {
    const log = this.#log;
    const grace = this.#config.shutdown.graceMs;
    this.#stopping = true;
    log.info({ reason }, "stopping");
    clearInterval(this.#watchdog);
    // Stop renewing first: the scheduler stops placing here when the registration lease runs out.
    await this.#registration?.stop();
    this.#health?.setStatus("", "NOT_SERVING");
    this.#health?.setStatus(SERVICE_NAME, "NOT_SERVING");
    // Stop accepting calls; calls in progress (an apply, an allocation) run to their end.
    const drained = Promise.all(
      this.#servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.tryShutdown(() => resolve());
          }),
      ),
    );
    this.#hub?.closeAll();
    this.#health?.endWatches();
    const inFlight = Promise.all([this.#mig?.idle(), this.#leases?.idle(), drained]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      inFlight.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), grace);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      log.warn({ graceMs: grace }, "calls still running after the grace period; closing them");
      for (const s of this.#servers) s.forceShutdown();
    }
    try {
      await this.#ledger?.flush();
      if (this.#ledger) await this.#ledger.checkpoint();
    } catch (err) {
      log.error({ err }, "cannot flush the lease checkpoint");
    }
    await this.#metricsServer?.close();
    await this.#nvmlThread?.stop(5000);
    if (this.#socketPath) await prepareSocketPath(this.#socketPath).catch(() => undefined);
    log.info("stopped");
  }
}

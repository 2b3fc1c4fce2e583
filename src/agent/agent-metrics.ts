// The agent's own metrics (tessera_agent_*), through prom-client: sweeps and their duration, the
// sampler's jitter and staleness, NVML errors by code, watchers, events, RPCs, and the process's
// CPU and memory. Values that come from elsewhere are read at scrape time.
import { Counter, Gauge, Histogram, Registry } from "prom-client";

export interface AgentMetricsSources {
  readonly watchers: () => { watchers: number; samplesMissed: number; samplesDelivered: number };
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly sweeps: Counter;
  readonly sweepDuration: Histogram;
  readonly samplerJitter: Gauge;
  readonly stale: Gauge;
  readonly sweepTimeouts: Counter;
  readonly nvmlErrors: Counter<"code" | "operation">;
  readonly events: Counter<"kind">;
  readonly rpcs: Counter<"method" | "code">;
  readonly fabricSweepDuration: Gauge;
  readonly info: Gauge<"version" | "simulated" | "driver_version">;

  constructor(sources: AgentMetricsSources) {
    const registers = [this.registry];
    this.sweeps = new Counter({ name: "tessera_agent_sweeps_total", help: "NVML sweeps completed.", registers });
    this.sweepDuration = new Histogram({
      name: "tessera_agent_sweep_duration_seconds",
      help: "Duration of one NVML sweep of the host.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.samplerJitter = new Gauge({
      name: "tessera_agent_sampler_jitter_seconds",
      help: "How late the last sweep started after it was due.",
      registers,
    });
    this.stale = new Gauge({
      name: "tessera_agent_sampler_stale",
      help: "1 while the sampler has not finished a sweep within its timeout (a hung NVML call).",
      registers,
    });
    this.sweepTimeouts = new Counter({
      name: "tessera_agent_sweep_timeouts_total",
      help: "Times the sampler missed its deadline.",
      registers,
    });
    this.nvmlErrors = new Counter({
      name: "tessera_agent_nvml_errors_total",
      help: "NVML calls that failed (other than NOT_SUPPORTED), by code and function.",
      labelNames: ["code", "operation"],
      registers,
    });
    this.events = new Counter({
      name: "tessera_agent_events_total",
      help: "Events appended to the event log, by kind.",
      labelNames: ["kind"],
      registers,
    });
    this.rpcs = new Counter({
      name: "tessera_agent_rpcs_total",
      help: "gRPC calls handled, by method and status code.",
      labelNames: ["method", "code"],
      registers,
    });
    this.fabricSweepDuration = new Gauge({
      name: "tessera_agent_fabric_sweep_duration_seconds",
      help: "Duration of the last fabric (sysfs) sweep.",
      registers,
    });
    this.info = new Gauge({
      name: "tessera_agent_info",
      help: "The agent's version and driver (value 1).",
      labelNames: ["version", "simulated", "driver_version"],
      registers,
    });
    new Gauge({
      name: "tessera_agent_watchers",
      help: "Open WatchNode streams.",
      registers,
      collect() {
        this.set(sources.watchers().watchers);
      },
    });
    let missedSeen = 0;
    new Counter({
      name: "tessera_agent_watch_samples_missed_total",
      help: "Samples slow watchers did not receive (they were told).",
      registers,
      collect() {
        const missed = sources.watchers().samplesMissed;
        if (missed > missedSeen) this.inc(missed - missedSeen);
        missedSeen = missed;
      },
    });
    let deliveredSeen = 0;
    new Counter({
      name: "tessera_agent_watch_samples_delivered_total",
      help: "Samples written to watchers.",
      registers,
      collect() {
        const delivered = sources.watchers().samplesDelivered;
        if (delivered > deliveredSeen) this.inc(delivered - deliveredSeen);
        deliveredSeen = delivered;
      },
    });
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    let cpuSeen = 0;
    new Counter({
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      registers,
      collect() {
        const u = process.cpuUsage();
        const total = (u.user + u.system) / 1e6;
        if (total > cpuSeen) this.inc(total - cpuSeen);
        cpuSeen = total;
      },
    });
  }
}

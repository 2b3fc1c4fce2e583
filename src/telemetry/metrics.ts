// Prometheus exposition of a node snapshot. GPU series use dcgm-exporter's names and labels where
// the meaning is the same (reference/monitoring.md §1.2–1.4), so existing dashboards work; the
// rest is Tessera's own under `tessera_`. Pure over its input, never NVML: a value the driver
// does not support is absent (no series), never zero.
import type { Lease } from "../ledger/types.js";
import type { HealthVerdict } from "./health.js";
import type {
  FabricSweep,
  GpuReading,
  GpuTelemetry,
  MigDeviceReading,
  MigReading,
  PortVerdictName,
} from "./sweep-types.js";
import { lookupXid } from "./xid-catalog.js";

export interface MetricsInput {
  readonly gpus: readonly GpuReading[];
  readonly health: ReadonlyMap<number, HealthVerdict>;
  readonly fabric: FabricSweep | undefined;
  readonly leases: Iterable<Lease>;
  /** Per GPU UUID: count per XID code, and the last code. */
  readonly xids: (gpuUuid: string) => { counts: ReadonlyMap<number, number>; last: number | undefined } | undefined;
  /** `Hostname` label value; undefined leaves the label out. */
  readonly hostname: string | undefined;
  /** The label's name: "Hostname" (dcgm-exporter ≤ 4.5.3) or "hostname" (later). */
  readonly hostnameLabel: string;
}

type Labels = readonly (readonly [string, string])[];

/** A label set rendered once (`{gpu="0",…}`, or "" for none) and reused for every series that has it. */
export type LabelText = string & { readonly __labels: true };

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function labelText(labels: Labels): LabelText {
  if (labels.length === 0) return "" as LabelText;
  return `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` as LabelText;
}

/** `base` with more labels after its own. */
function withLabels(base: LabelText, extra: Labels): LabelText {
  if (extra.length === 0) return base;
  const more = labelText(extra);
  return (base === "" ? more : `${base.slice(0, -1)},${more.slice(1)}`) as LabelText;
}

function num(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : v < 0 ? "-Inf" : "NaN";
}

/** One rendered series with its family's metadata; blocks of these are cached (MetricsRenderer). */
interface Entry {
  readonly name: string;
  readonly type: "gauge" | "counter";
  readonly help: string;
  readonly line: string;
}

/** Collects samples per family so each family is written once, with its HELP and TYPE. */
class Families {
  readonly #order: string[] = [];
  readonly #families = new Map<string, { help: string; type: string; lines: string[] }>();
  #recording: Entry[] | undefined;

  add(name: string, type: "gauge" | "counter", help: string, labels: LabelText, value: number | undefined): void {
    if (value === undefined || Number.isNaN(value)) return;
    const line = `${name}${labels} ${num(value)}`;
    if (this.#recording) this.#recording.push({ name, type, help, line });
    else this.#put(name, type, help, line);
  }

  /** The entries `render` adds, without adding them. */
  record(render: (f: Families) => void): Entry[] {
    const entries: Entry[] = [];
    const saved = this.#recording;
    this.#recording = entries;
    try {
      render(this);
    } finally {
      this.#recording = saved;
    }
    return entries;
  }

  replay(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (this.#recording) this.#recording.push(e);
      else this.#put(e.name, e.type, e.help, e.line);
    }
  }

  #put(name: string, type: string, help: string, line: string): void {
    let f = this.#families.get(name);
    if (!f) {
      f = { help, type, lines: [] };
      this.#families.set(name, f);
      this.#order.push(name);
    }
    f.lines.push(line);
  }

  text(): string {
    const out: string[] = [];
    for (const name of this.#order) {
      const f = this.#families.get(name);
      if (!f) continue;
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`, ...f.lines);
    }
    return out.length === 0 ? "" : `${out.join("\n")}\n`;
  }
}

const HEALTH_VALUE = { healthy: 0, degraded: 1, unhealthy: 2 } as const;
const PORT_VALUE: Record<PortVerdictName, number> = { healthy: 0, degraded: 1, flapping: 2, down: 3, missing: 4 };

export function gpuLabels(g: GpuReading, input: MetricsInput): LabelText {
  const id = g.identity;
  const labels: [string, string][] = [
    ["gpu", String(id.index)],
    ["UUID", id.uuid],
    ["pci_bus_id", id.pciBusId],
    ["device", `nvidia${id.minorNumber ?? id.index}`],
    ["modelName", id.name],
  ];
  if (input.hostname !== undefined) labels.push([input.hostnameLabel, input.hostname]);
  return labelText(labels);
}

/**
 * Renders snapshots, reusing the text of every part that is the same object as at the last render
 * (the sampler hands over unchanged readings as the same objects): most of a MIG host's series do
 * not change from one sweep to the next, and a scrape should cost next to nothing.
 */
export class MetricsRenderer {
  readonly #labels = new WeakMap<GpuReading["identity"], { key: string; labels: LabelText }>();
  readonly #telemetry = new WeakMap<GpuTelemetry, { key: string; entries: Entry[] }>();
  readonly #migDevices = new WeakMap<MigDeviceReading, { key: string; entries: Entry[] }>();
  readonly #layouts = new WeakMap<MigReading, { key: string; entries: Entry[] }>();
  readonly #ports = new WeakMap<FabricSweep, Entry[]>();

  render(input: MetricsInput): string {
    const f = new Families();
    for (const g of input.gpus) this.#gpu(f, g, input);
    renderLeases(f, input);
    if (input.fabric) {
      const fabric = input.fabric;
      let ports = this.#ports.get(fabric);
      if (!ports) {
        ports = f.record((r) => renderPorts(r, fabric));
        this.#ports.set(fabric, ports);
      }
      f.replay(ports);
      renderTopology(f, fabric, input, (g) => this.#gpuLabels(g, input));
    }
    return f.text();
  }

  #gpuLabels(g: GpuReading, input: MetricsInput): LabelText {
    const key = `${input.hostnameLabel}=${input.hostname ?? ""}`;
    const cached = this.#labels.get(g.identity);
    if (cached?.key === key) return cached.labels;
    const labels = gpuLabels(g, input);
    this.#labels.set(g.identity, { key, labels });
    return labels;
  }

  #gpu(f: Families, g: GpuReading, input: MetricsInput): void {
    const L = this.#gpuLabels(g, input);
    renderGpuHead(f, g, input, L);
    const t = g.telemetry;
    if (!t) return;
    const mig = g.mig;
    // dcgm-exporter's flex mode: memory per GPU instance when the GPU has instances, else per GPU.
    const perInstance = (mig?.enabled ?? false) && t.migDevices.length > 0;
    const key = `${L}${perInstance}`;
    let block = this.#telemetry.get(t);
    if (block?.key !== key) {
      block = { key, entries: f.record((r) => renderTelemetry(r, t, L, perInstance)) };
      this.#telemetry.set(t, block);
    }
    f.replay(block.entries);
    if (perInstance) {
      for (const m of t.migDevices) {
        let dev = this.#migDevices.get(m);
        if (dev?.key !== L) {
          dev = { key: L, entries: f.record((r) => renderMigDevice(r, m, L)) };
          this.#migDevices.set(m, dev);
        }
        f.replay(dev.entries);
      }
    }
    if (!mig) return;
    let layout = this.#layouts.get(mig);
    if (layout?.key !== L) {
      layout = { key: L, entries: f.record((r) => renderMigLayout(r, mig, L)) };
      this.#layouts.set(mig, layout);
    }
    f.replay(layout.entries);
  }
}

export function renderSnapshotMetrics(input: MetricsInput): string {
  return new MetricsRenderer().render(input);
}

/** What changes with events rather than with sweeps: lost, health, XIDs. */
function renderGpuHead(f: Families, g: GpuReading, input: MetricsInput, L: LabelText): void {
  const verdict = input.health.get(g.identity.index);
  f.add("tessera_gpu_lost", "gauge", "1 when NVML answers GPU_IS_LOST (fallen off the bus).", L, g.lost ? 1 : 0);
  if (verdict)
    f.add(
      "tessera_gpu_health",
      "gauge",
      "GPU health: 0 healthy, 1 degraded, 2 unhealthy.",
      L,
      HEALTH_VALUE[verdict.state],
    );
  const xid = input.xids(g.identity.uuid);
  if (xid?.last !== undefined) {
    const entry = lookupXid(xid.last);
    f.add(
      "DCGM_FI_DEV_XID_ERRORS",
      "gauge",
      "Value of the last XID error encountered.",
      withLabels(L, [
        ["err_code", String(xid.last)],
        ["err_msg", entry.description],
      ]),
      xid.last,
    );
  }
  for (const [code, count] of xid?.counts ?? [])
    f.add(
      "tessera_xid_events_total",
      "counter",
      "XID events since the agent started, by code.",
      withLabels(L, [["xid", String(code)]]),
      count,
    );
}

function renderTelemetry(f: Families, t: GpuTelemetry, L: LabelText, perInstance: boolean): void {
  f.add("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", L, t.smClockMHz);
  f.add("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", L, t.memoryClockMHz);
  f.add("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", L, t.temperatureC);
  f.add(
    "DCGM_FI_DEV_POWER_USAGE",
    "gauge",
    "Power draw (in W).",
    L,
    t.powerMilliwatts === undefined ? undefined : t.powerMilliwatts / 1000,
  );
  f.add(
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "counter",
    "Total energy consumption since boot (in mJ).",
    L,
    t.energyMillijoules,
  );
  f.add("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", L, t.pcieReplayCounter);
  f.add("DCGM_FI_DEV_PCIE_LINK_GEN", "gauge", "Current PCIe link generation.", L, t.pcieGeneration);
  f.add("DCGM_FI_DEV_PCIE_LINK_WIDTH", "gauge", "Current PCIe link width (lanes).", L, t.pcieWidth);
  f.add("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", L, t.utilizationPercent);
  f.add("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", L, t.memoryUtilizationPercent);
  f.add(
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "counter",
    "Total number of single-bit volatile ECC errors.",
    L,
    t.eccCorrectedVolatile,
  );
  f.add(
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "counter",
    "Total number of double-bit volatile ECC errors.",
    L,
    t.eccUncorrectedVolatile,
  );
  f.add(
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "counter",
    "Total number of single-bit persistent ECC errors.",
    L,
    t.eccCorrectedAggregate,
  );
  f.add(
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "counter",
    "Total number of double-bit persistent ECC errors.",
    L,
    t.eccUncorrectedAggregate,
  );
  f.add(
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "counter",
    "Number of remapped rows for correctable errors",
    L,
    t.remappedRows?.corrected,
  );
  f.add(
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "counter",
    "Number of remapped rows for uncorrectable errors",
    L,
    t.remappedRows?.uncorrected,
  );
  f.add(
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "gauge",
    "Whether remapping of rows has failed",
    L,
    t.remappedRows === undefined ? undefined : t.remappedRows.failure ? 1 : 0,
  );
  if (t.clockEventReasons !== undefined)
    f.add(
      "tessera_gpu_clock_event_reasons",
      "gauge",
      "Why clocks are below maximum (nvmlClocksEventReason bit mask).",
      L,
      Number(t.clockEventReasons),
    );
  if (!perInstance) {
    f.add("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", L, t.memoryUsedMiB);
    f.add("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", L, t.memoryFreeMiB);
    f.add("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", L, t.memoryReservedMiB);
  }
}

function renderMigDevice(f: Families, m: MigDeviceReading, L: LabelText): void {
  const ML = withLabels(L, [
    ["GPU_I_PROFILE", m.profileName],
    ["GPU_I_ID", String(m.gpuInstanceId)],
  ]);
  f.add("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", ML, m.memoryUsedMiB);
  f.add(
    "DCGM_FI_DEV_FB_FREE",
    "gauge",
    "Framebuffer memory free (in MiB).",
    ML,
    m.memoryTotalMiB === undefined || m.memoryUsedMiB === undefined ? undefined : m.memoryTotalMiB - m.memoryUsedMiB,
  );
  f.add(
    "tessera_mig_device_processes",
    "gauge",
    "Compute processes on the MIG device.",
    withLabels(ML, [["mig_uuid", m.uuid]]),
    m.processes.length,
  );
}

function renderMigLayout(f: Families, mig: MigReading, L: LabelText): void {
  f.add("tessera_gpu_mig_enabled", "gauge", "1 when MIG mode is enabled.", L, mig.enabled ? 1 : 0);
  f.add(
    "tessera_gpu_mig_pending_enabled",
    "gauge",
    "MIG mode after the next GPU reset (1 enabled).",
    L,
    mig.pendingEnabled ? 1 : 0,
  );
  if (!mig.enabled) return;
  const byProfile = new Map<string, number>();
  for (const gi of mig.instances) byProfile.set(gi.profileName, (byProfile.get(gi.profileName) ?? 0) + 1);
  for (const [profile, n] of byProfile)
    f.add(
      "tessera_mig_instances",
      "gauge",
      "GPU instances by profile.",
      withLabels(L, [["GPU_I_PROFILE", profile]]),
      n,
    );
  const frag = mig.fragmentation;
  if (frag) {
    f.add(
      "tessera_mig_free_memory_slices",
      "gauge",
      "Memory slices no GPU instance occupies.",
      L,
      frag.freeMemorySlices,
    );
    f.add(
      "tessera_mig_stranded_memory_slices",
      "gauge",
      "Free memory slices no legal placement of any profile can use.",
      L,
      frag.strandedMemorySlices,
    );
    f.add(
      "tessera_mig_fragmentation_score",
      "gauge",
      "Share of free memory slices no single profile can fill (0 none … 1).",
      L,
      frag.score,
    );
    for (const fit of frag.fits)
      f.add(
        "tessera_mig_placeable_instances",
        "gauge",
        "New instances of the profile that still fit.",
        withLabels(L, [["GPU_I_PROFILE", fit.profileName]]),
        fit.count,
      );
  }
}

function renderLeases(f: Families, input: MetricsInput): void {
  const byTenant = new Map<string, number>();
  const lines: [LabelText, number][] = [];
  for (const l of input.leases) {
    byTenant.set(l.tenant, (byTenant.get(l.tenant) ?? 0) + 1);
    lines.push([
      labelText([
        ["workload_id", l.workloadId],
        ["tenant", l.tenant],
        ["gpu", String(l.gpuIndex)],
        ["UUID", l.gpuUuid],
        ["device_uuid", l.migUuid ?? l.gpuUuid],
        ["GPU_I_PROFILE", l.profileName],
      ]),
      1,
    ]);
  }
  f.add("tessera_leases", "gauge", "Leases held, all tenants.", labelText([]), lines.length);
  for (const [tenant, n] of byTenant)
    f.add("tessera_leases_by_tenant", "gauge", "Leases held by tenant.", labelText([["tenant", tenant]]), n);
  for (const [labels, v] of lines) f.add("tessera_lease_info", "gauge", "One series per lease (value 1).", labels, v);
}

function renderPorts(f: Families, fabric: FabricSweep): void {
  for (const p of fabric.ports) {
    const L = labelText([
      ["device", p.device],
      ["port", String(p.port)],
      ["link_layer", p.linkLayer],
    ]);
    f.add(
      "tessera_ib_port_up",
      "gauge",
      "1 when the port is ACTIVE and LinkUp.",
      L,
      p.up === undefined ? undefined : p.up ? 1 : 0,
    );
    f.add(
      "tessera_ib_port_health",
      "gauge",
      "Port health: 0 healthy, 1 degraded, 2 flapping, 3 down, 4 missing.",
      L,
      PORT_VALUE[p.verdict],
    );
    f.add("tessera_ib_port_rate_gbps", "gauge", "Link rate (Gb/s).", L, p.rateGbps);
    f.add("tessera_ib_port_receive_gbps", "gauge", "Data received over the last interval (Gb/s).", L, p.rxGbps);
    f.add("tessera_ib_port_transmit_gbps", "gauge", "Data transmitted over the last interval (Gb/s).", L, p.txGbps);
    for (const [counter, rate] of Object.entries(p.errorRatesPerSec))
      f.add(
        "tessera_ib_port_error_rate",
        "gauge",
        "Error counter increments per second over the last interval.",
        withLabels(L, [["counter", counter]]),
        rate,
      );
  }
}

function renderTopology(
  f: Families,
  fabric: FabricSweep,
  input: MetricsInput,
  labelsOf: (g: GpuReading) => LabelText,
): void {
  for (const t of fabric.topology) {
    const gpu = input.gpus.find((g) => g.identity.index === t.gpuIndex);
    if (!gpu) continue;
    f.add(
      "tessera_gpu_rdma_degraded",
      "gauge",
      "1 when the nearest healthy NIC is farther than PXB (no GPUDirect RDMA).",
      withLabels(labelsOf(gpu), [
        ["nic", t.nearestNic],
        ["distance", t.distance],
      ]),
      t.rdmaDegraded ? 1 : 0,
    );
  }
}

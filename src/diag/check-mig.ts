// MIG consistency: modes that have not taken effect, GPU instances nothing can run on, and
// leases that disagree with the instances that exist (reference/nvml.md §7).
import type { GpuProbe, MigFacts } from "./facts.js";
import { type Finding, fail, fold, gpuLabel, pass, unreadable, warn } from "./findings.js";
import type { LeaseRecord } from "./leases.js";
import type { Check, Verdict } from "./types.js";

const onOff = (enabled: boolean) => (enabled ? "enabled" : "disabled");

function pendingFix(index: number, architecture: string | undefined): string {
  const reset = `stop the GPU's processes and reset it (nvidia-smi -r -i ${index}), or reboot the node`;
  return architecture === "Ampere"
    ? `On Ampere a MIG mode change takes effect only at a GPU reset: ${reset}.`
    : `Something held the GPU when its MIG mode changed: ${reset}.`;
}

const NO_CI_FIX =
  "A GPU instance without a compute instance cannot run anything: create a compute instance in it (tessera mig apply with the intended layout) or destroy it.";

export const migLayoutCheck: Check<readonly GpuProbe<MigFacts>[]> = {
  id: "mig.layout",
  title: "MIG mode settled and every GPU instance usable",
  level: "quick",
  reads: ["nvmlDeviceGetMigMode", "nvmlDeviceGetGpuInstances", "nvmlGpuInstanceGetComputeInstances"],
  gather: (ctx) => ctx.nvml("mig"),
  verdict: migLayoutVerdict,
};

export function migLayoutVerdict(gpus: readonly GpuProbe<MigFacts>[]): Verdict {
  const findings: Finding[] = gpus.flatMap((g): Finding[] => {
    const bad = unreadable(g);
    if (bad || !g.facts) return [bad as Finding];
    const { mode, gpuInstances, migDevices, architecture } = g.facts;
    const label = gpuLabel(g.index);
    if (mode === undefined) return [];
    const out: Finding[] = [];
    if (mode.current !== mode.pending) {
      out.push(
        warn(
          `${label}: MIG mode change pending (${onOff(mode.current)} now, ${onOff(mode.pending)} after the next reset)`,
          pendingFix(g.index, architecture),
        ),
      );
    }
    for (const gi of gpuInstances) {
      if (gi.computeInstanceIds.length > 0) continue;
      const where = `${gi.profileName ?? `profile ${gi.profileId}`} at ${gi.placement.start}:${gi.placement.size}`;
      out.push(warn(`${label}: GPU instance ${gi.id} (${where}) has no compute instance`, NO_CI_FIX));
    }
    const giIds = new Set(gpuInstances.map((gi) => gi.id));
    for (const m of migDevices) {
      if (giIds.has(m.gpuInstanceId)) continue;
      out.push(
        fail(
          `${label}: MIG device ${m.uuid} names GPU instance ${m.gpuInstanceId}, which the GPU does not list`,
          "NVML contradicts itself about this GPU's instances: drain the GPU and reset it; report it with nvidia-bug-report.sh if it persists.",
        ),
      );
    }
    if (out.length > 0) return out;
    if (!mode.current) return [pass(`${label}: MIG disabled`)];
    const cis = gpuInstances.reduce((n, gi) => n + gi.computeInstanceIds.length, 0);
    return [pass(`${label}: MIG enabled, ${gpuInstances.length} GPU instances, ${cis} compute instances`)];
  });
  const enabled = gpus.filter((g) => g.facts?.mode?.current).length;
  return fold(findings, {
    passSummary: enabled === 0 ? "MIG disabled on every GPU" : `MIG settled on every GPU (${enabled} with MIG enabled)`,
    empty: { status: "skip", text: "no GPU on this host supports MIG" },
  });
}

export interface MigLeaseFacts {
  readonly mig: readonly GpuProbe<MigFacts>[];
  readonly leases: readonly LeaseRecord[];
}

const VANISHED_FIX =
  "A workload holds a lease on a device that no longer exists (destroyed by hand, or lost in a GPU reset): release the lease (tessera-agent does it on Release) and reschedule the workload.";
const UNLEASED_FIX =
  "Processes run on a MIG device no workload leases: they bypass Tessera's scheduler (and its accounting); find them (nvidia-smi) and stop them, or lease the device to them.";

export const migLeasesCheck: Check<MigLeaseFacts> = {
  id: "mig.leases",
  title: "Leases and MIG instances agree",
  level: "quick",
  reads: [
    "the agent's lease checkpoint",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceGetComputeRunningProcesses_v3",
  ],
  async gather(ctx) {
    const [leases, mig] = await Promise.all([ctx.leases(), ctx.nvml("mig")]);
    return { leases, mig };
  },
  verdict: migLeasesVerdict,
};

export function migLeasesVerdict({ mig, leases }: MigLeaseFacts): Verdict {
  const byGpuUuid = new Map(mig.flatMap((g) => (g.facts?.uuid ? [[g.facts.uuid, g] as const] : [])));
  const unreadableGpus = new Set(mig.filter((g) => g.error).map((g) => g.index));
  const findings: Finding[] = [];
  const leased = new Set<string>();
  for (const lease of leases) {
    leased.add(lease.deviceUuid);
    const holder = `workload ${lease.workloadId}`;
    const gpu = byGpuUuid.get(lease.gpuUuid);
    if (!gpu?.facts) {
      if (unreadableGpus.has(lease.gpuIndex)) {
        findings.push(
          fail(
            `${holder} holds ${lease.deviceUuid} on ${gpuLabel(lease.gpuIndex)}, which cannot be read (see gpu.reachable)`,
            VANISHED_FIX,
          ),
        );
      } else {
        findings.push(
          fail(`${holder} holds ${lease.deviceUuid} on ${lease.gpuUuid}, which this host no longer has`, VANISHED_FIX),
        );
      }
      continue;
    }
    const label = gpuLabel(gpu.index);
    const { mode, migDevices } = gpu.facts;
    if (lease.deviceUuid === lease.gpuUuid) {
      if (mode?.current) {
        findings.push(
          fail(
            `${holder} holds all of ${label}, but MIG is enabled on it now`,
            "The GPU was repartitioned under a whole-GPU lease: release the lease and reschedule the workload, or disable MIG on the GPU again.",
          ),
        );
      }
      continue;
    }
    const device = migDevices.find((m) => m.uuid === lease.deviceUuid);
    const ids = `GPU instance ${lease.gpuInstanceId ?? "?"}, compute instance ${lease.computeInstanceId ?? "?"}`;
    if (!device)
      findings.push(
        fail(
          `${holder} holds ${lease.deviceUuid} (${ids}) on ${label}: that MIG device no longer exists`,
          VANISHED_FIX,
        ),
      );
  }
  let free = 0;
  for (const g of mig) {
    for (const m of g.facts?.migDevices ?? []) {
      if (leased.has(m.uuid)) continue;
      if ((m.processCount ?? 0) > 0) {
        findings.push(
          warn(
            `${gpuLabel(g.index)}: ${m.uuid} (GPU instance ${m.gpuInstanceId}, compute instance ${m.computeInstanceId}) runs ${m.processCount} processes but no workload leases it`,
            UNLEASED_FIX,
          ),
        );
      } else {
        free++;
      }
    }
  }
  const summary = `${leases.length} leases, each on a device that exists; ${free} MIG devices free (no lease, idle)`;
  return fold(findings, { empty: pass(summary) });
}

// Human output of a plan (`tessera mig plan`): per GPU, the slot map before
// and after, then what is kept, destroyed and created, in apply order.

import type { DestroyStep, GpuPlan, HostPlan, KeepStep } from "./plan.js";
import type { Placement } from "./types.js";

function at(name: string, p: Placement): string {
  return `${name}@${p.start}`;
}

function devices(uuids: readonly string[]): string {
  return uuids.length === 0 ? "" : ` (${uuids.join(", ")})`;
}

function keepLine(k: KeepStep): string {
  const cis = k.keepComputeInstances.map((c) => c.uuid);
  const lines = [`  keep     ${at(k.profileName, k.placement)}  GI ${k.giId}${devices(cis)}`];
  for (const c of k.destroyComputeInstances) {
    const busy = c.processIds.length > 0 ? `  BUSY: pids ${c.processIds.join(", ")}` : "";
    lines.push(`    destroy compute instance ${c.name}  CI ${c.ciId} (${c.uuid})${busy}`);
  }
  for (const c of k.createComputeInstances) lines.push(`    create compute instance ${c.name}`);
  return lines.join("\n");
}

function destroyLine(d: DestroyStep): string {
  const pids = d.computeInstances.flatMap((c) => c.processIds);
  const busy = d.busy ? `  BUSY: pids ${pids.join(", ")}` : "";
  return `  destroy  ${at(d.profileName, d.placement)}  GI ${d.giId}${devices(d.computeInstances.map((c) => c.uuid))}${busy}`;
}

function summary(plan: GpuPlan & { feasible: true }): string {
  if (!plan.changed) return "unchanged";
  const parts = [`${plan.keep.length} kept`, `${plan.destroy.length} to destroy`, `${plan.create.length} to create`];
  if (plan.modeChange) parts.unshift(`MIG mode ${plan.modeChange.from} → ${plan.modeChange.to}`);
  return parts.join(", ");
}

/** One GPU's plan as text. */
export function renderGpuPlan(plan: GpuPlan): string {
  const head = `GPU ${plan.gpu.index}  ${plan.gpu.model}  ${plan.gpu.uuid}`;
  if (!plan.feasible) {
    return [`${head}: INFEASIBLE: ${plan.reason}`, `  now      ${plan.slotsBefore}`, "  nothing will be changed"].join(
      "\n",
    );
  }
  const lines = [`${head}: ${summary(plan)}`, `  before   ${plan.slotsBefore}`, `  after    ${plan.slotsAfter}`];
  if (!plan.changed) return lines.join("\n");
  for (const d of plan.destroy) lines.push(destroyLine(d));
  if (plan.modeChange) {
    const { from, pending, to } = plan.modeChange;
    lines.push(`  mode     ${from}${pending === from ? "" : ` (pending ${pending})`} → ${to}`);
  }
  for (const k of plan.keep) lines.push(keepLine(k));
  for (const c of plan.create) {
    const how = c.pinned ? "pinned" : "chosen";
    lines.push(
      `  create   ${at(c.profileName, c.placement)}  (${how})  compute: ${c.computeInstances.map((x) => x.name).join(" + ")}`,
    );
  }
  if (plan.busyDestroyed > 0) {
    lines.push(`  warning  destroys ${plan.busyDestroyed} busy MIG device(s); apply refuses unless forced`);
  }
  lines.push(`  room     largest profile that still fits: ${plan.largestPlaceableAfter ?? "none"}`);
  return lines.join("\n");
}

/** A host plan as text, one block per GPU. */
export function renderPlan(plan: HostPlan): string {
  const blocks = plan.gpus.map(renderGpuPlan);
  if (!plan.feasible) {
    const bad = plan.gpus.filter((g) => !g.feasible).map((g) => g.gpu.index);
    blocks.push(`infeasible on GPU ${bad.join(", ")}: nothing on this host will be changed`);
  }
  return blocks.join("\n");
}

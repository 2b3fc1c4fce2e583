import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import { planHost } from "../../src/mig/plan.js";
import { resolveMigConfig, selectMigConfig } from "../../src/mig/select.js";
import { parseMigSpec } from "../../src/mig/spec.js";
import type { DesiredLayout, GpuGeometry, HostGpu } from "../../src/mig/types.js";
import { A30_24GB, A100_40GB, emptyLayout, gpuUuid, H100_80GB, H200_141GB, hostGpu } from "./geometries.js";

const spec = (...l: string[]) => parseMigSpec(`${l.join("\n")}\n`, "spec.yaml");

/** Desired instances as `name[c-split]` strings, e.g. `3g.40gb[1c.3g.40gb+1c.3g.40gb]`. */
function describe_(geometry: GpuGeometry, d: DesiredLayout): string[] {
  return d.instances.map((i) => {
    const p = geometry.profiles.find((x) => x.id === i.profileId);
    const cis = i.computeProfileIds.map((id) => p?.computeProfiles.find((c) => c.id === id)?.name).join("+");
    return `${p?.name}${i.start === null ? "" : `@${i.start}`}[${cis}]`;
  });
}

const notMig: HostGpu = {
  index: 9,
  uuid: gpuUuid(9),
  model: "NVIDIA T4",
  pciDeviceId: 0x1eb810de,
  pciSubsystemId: 0,
  geometry: null,
  layout: emptyLayout("disabled"),
};

describe("select", () => {
  it("gives each GPU of a mixed host the entry its PCI id selects", () => {
    const s = spec(
      "version: v1",
      "mig-configs:",
      "  all-balanced:",
      '    - device-filter: ["0x233010DE"]',
      "      devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "1g.10gb": 2',
      '        "2g.20gb": 1',
      '        "3g.40gb": 1',
      '    - device-filter: "0x20B710DE"',
      "      devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "1g.6gb": 2',
      '        "2g.12gb": 1',
    );
    const gpus = [hostGpu(0, H100_80GB), hostGpu(1, A30_24GB), hostGpu(2, A100_40GB)];
    const resolved = resolveMigConfig(s, null, gpus);
    assert.deepEqual(
      resolved.targets.map((t) => t.gpu.index),
      [0, 1],
      "the A100-40GB matches no filter and stays as it is",
    );
    assert.deepEqual(describe_(H100_80GB, resolved.targets[0]?.desired as DesiredLayout), [
      "3g.40gb[3g.40gb]",
      "2g.20gb[2g.20gb]",
      "1g.10gb[1g.10gb]",
      "1g.10gb[1g.10gb]",
    ]);
    assert.deepEqual(describe_(A30_24GB, resolved.targets[1]?.desired as DesiredLayout), [
      "2g.12gb[2g.12gb]",
      "1g.6gb[1g.6gb]",
      "1g.6gb[1g.6gb]",
    ]);
    assert.equal(resolved.targets[1]?.source.line, 11);
    assert.ok(planHost(resolved.targets).feasible);
  });

  it("resolves one name to each model's own profile on heterogeneous hosts", () => {
    const s = spec(
      "version: v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "1g.10gb": 4',
    );
    const [h100, a100] = resolveMigConfig(s, "a", [hostGpu(0, H100_80GB), hostGpu(1, A100_40GB)]).targets;
    const h100Profile = H100_80GB.profiles.find((p) => p.name === "1g.10gb");
    const a100Profile = A100_40GB.profiles.find((p) => p.name === "1g.10gb");
    assert.equal(h100?.desired.instances[0]?.profileId, h100Profile?.id);
    assert.equal(a100?.desired.instances[0]?.profileId, a100Profile?.id);
    assert.notEqual(
      h100Profile?.id,
      a100Profile?.id,
      "1g.10gb is the 1-slice profile on H100, the REV2 one on A100-40GB",
    );
    assert.equal(a100Profile?.memorySlices, 2);
  });

  it("applies entries in order: a later entry replaces an earlier one for the same GPU", () => {
    const s = spec(
      "version: v1",
      "mig-configs:",
      "  custom:",
      "    - devices: all",
      "      mig-enabled: false",
      "    - devices: [1]",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "7g.80gb": 1',
      "    - devices: [7]",
      "      mig-enabled: false",
    );
    const resolved = resolveMigConfig(s, null, [hostGpu(0, H100_80GB), hostGpu(1, H100_80GB)]);
    assert.deepEqual(
      resolved.targets.map((t) => [t.gpu.index, t.desired.mode, t.source.line]),
      [
        [0, "disabled", 4],
        [1, "enabled", 6],
      ],
    );
    assert.deepEqual(resolved.warnings, ["spec.yaml:10: selects GPU index 7, which this host does not have"]);
  });

  it("rejects a profile the GPU's model does not have and lists the valid ones", () => {
    const s = spec(
      "version: v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "1g.5gb": 7',
    );
    assert.throws(
      () => resolveMigConfig(s, "a", [hostGpu(0, H100_80GB)]),
      (err: unknown) =>
        err instanceof InputError &&
        err.line === 7 &&
        /unknown MIG profile '1g.5gb' for GPU 0 \(NVIDIA H100 80GB HBM3\); valid profiles on this model: 7g.80gb, 4g.40gb, 3g.40gb, 2g.20gb, 1g.20gb, 1g.10gb, 1g.10gb\+me/.test(
          err.message,
        ),
    );
  });

  it("rejects compute splits and pinned starts the model does not allow", () => {
    const head = [
      "version: tessera/v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
    ];
    assert.throws(
      () => resolveMigConfig(spec(...head, '        "3c.4g.40gb": 1'), "a", [hostGpu(0, H100_80GB)]),
      /4g.40gb on GPU 0 .* has no 3-slice compute instance; valid: 4g.40gb, 2c.4g.40gb, 1c.4g.40gb/,
    );
    assert.throws(
      () => resolveMigConfig(spec(...head, '        "3g.40gb@2": 1'), "a", [hostGpu(0, H100_80GB)]),
      /3g.40gb cannot start at memory slice 2 on GPU 0 .*; legal starts: 0, 4/,
    );
    assert.throws(
      () => spec(...head, '        "2c.2g.20gb@0": 1', '        "1c.2g.20gb@0": 1'),
      (err: unknown) =>
        err instanceof InputError && err.line === 7 && /need 3 compute slices, but 2g.20gb has 2/.test(err.message),
    );
  });

  it("packs compute instances into GPU instances as mig-parted does", () => {
    const resolve = (...devices: string[]) =>
      describe_(
        H100_80GB,
        resolveMigConfig(
          spec(
            "version: v1",
            "mig-configs:",
            "  a:",
            "    - devices: all",
            "      mig-enabled: true",
            "      mig-devices:",
            ...devices,
          ),
          "a",
          [hostGpu(0, H100_80GB)],
        ).targets[0]?.desired as DesiredLayout,
      );
    assert.deepEqual(resolve('        "1c.3g.40gb": 4'), [
      "3g.40gb[1c.3g.40gb+1c.3g.40gb+1c.3g.40gb]",
      "3g.40gb[1c.3g.40gb]",
    ]);
    assert.deepEqual(resolve('        "1c.3g.40gb": 2', '        "3g.40gb": 1'), [
      "3g.40gb[3g.40gb]",
      "3g.40gb[1c.3g.40gb+1c.3g.40gb]",
    ]);
    assert.deepEqual(resolve('        "1c.3g.40gb": 1', '        "2c.3g.40gb": 1'), ["3g.40gb[2c.3g.40gb+1c.3g.40gb]"]);
    assert.deepEqual(resolve('        "1c.2g.20gb": 2', '        "1c.3g.40gb": 1', '        "1g.10gb": 0'), [
      "3g.40gb[1c.3g.40gb]",
      "2g.20gb[1c.2g.20gb+1c.2g.20gb]",
    ]);
  });

  it("groups keys pinned to one start into one GPU instance", () => {
    const s = spec(
      "version: tessera/v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      '        "1c.3g.40gb@0": 1',
      '        "2c.3g.40gb@0": 1',
      '        "3g.40gb@4": 1',
    );
    const d = resolveMigConfig(s, "a", [hostGpu(0, H100_80GB)]).targets[0]?.desired as DesiredLayout;
    assert.deepEqual(describe_(H100_80GB, d), ["3g.40gb@0[2c.3g.40gb+1c.3g.40gb]", "3g.40gb@4[3g.40gb]"]);
  });

  it("selects by UUID and by model name (tessera/v1)", () => {
    const s = spec(
      "version: tessera/v1",
      "mig-configs:",
      "  a:",
      `    - devices: [${gpuUuid(1)}]`,
      "      mig-enabled: true",
      "      mig-devices: {}",
      "    - devices: all",
      '      device-model: ["nvidia h200"]',
      "      mig-enabled: true",
      "      mig-devices:",
      '        "7g.141gb": 1',
    );
    const resolved = resolveMigConfig(s, "a", [hostGpu(0, H100_80GB), hostGpu(1, H100_80GB), hostGpu(2, H200_141GB)]);
    assert.deepEqual(
      resolved.targets.map((t) => [t.gpu.index, t.desired.instances.length]),
      [
        [1, 0],
        [2, 1],
      ],
    );
  });

  it("matches a subsystem-qualified device filter only on that subsystem", () => {
    const s = spec(
      "version: v1",
      "mig-configs:",
      "  a:",
      '    - device-filter: "0x233010DE:0x16C110DE"',
      "      devices: all",
      "      mig-enabled: false",
    );
    const other = { ...hostGpu(1, H100_80GB), pciSubsystemId: 0x17a110de };
    assert.deepEqual(
      resolveMigConfig(s, "a", [hostGpu(0, H100_80GB), other]).targets.map((t) => t.gpu.index),
      [0],
    );
  });

  it("skips GPUs without MIG under 'devices: all' but refuses to configure one by index", () => {
    const enable = (devices: string) =>
      spec(
        "version: v1",
        "mig-configs:",
        "  a:",
        `    - devices: ${devices}`,
        "      mig-enabled: true",
        "      mig-devices: {}",
      );
    assert.deepEqual(
      resolveMigConfig(enable("all"), "a", [hostGpu(0, H100_80GB), notMig]).targets.map((t) => t.gpu.index),
      [0],
    );
    assert.throws(
      () => resolveMigConfig(enable("[9]"), "a", [hostGpu(0, H100_80GB), notMig]),
      /GPU 9 \(NVIDIA T4\) is not MIG-capable/,
    );
  });

  it("chooses the config as mig-parted does", () => {
    const two = spec(
      "version: v1",
      "mig-configs:",
      "  a:",
      "    - devices: all",
      "      mig-enabled: false",
      "  b:",
      "    - devices: all",
      "      mig-enabled: false",
    );
    assert.throws(() => selectMigConfig(two, null), /has 2 mig-configs; choose one of: a, b/);
    assert.throws(() => selectMigConfig(two, "c"), /mig-config 'c' is not in the spec; available: a, b/);
    assert.equal(selectMigConfig(two, "b").name, "b");
  });
});

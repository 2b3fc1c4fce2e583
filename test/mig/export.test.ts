import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exportMigDevices } from "../../src/mig/export.js";
import { planHost } from "../../src/mig/plan.js";
import { resolveMigConfig } from "../../src/mig/select.js";
import { parseMigSpec } from "../../src/mig/spec.js";
import type { GpuLayout } from "../../src/mig/types.js";
import { H100_80GB, hostGpu, layoutOf, migUuid, profileNamed } from "./geometries.js";

const threeG = profileNamed(H100_80GB, "3g.40gb");
const oneC = threeG.computeProfiles.find((c) => c.name === "1c.3g.40gb");

const layout: GpuLayout = {
  mode: { current: "enabled", pending: "enabled" },
  instances: [
    ...layoutOf(H100_80GB, [["1g.10gb", 0]]).instances,
    {
      giId: 2,
      profileId: threeG.id,
      placement: { start: 4, size: 4 },
      computeInstances: [0, 1, 2].map((ciId) => ({ ciId, profileId: oneC?.id ?? -1, uuid: migUuid(), processIds: [] })),
    },
  ],
};

describe("export", () => {
  it("writes the layout as mig-parted counts it", () => {
    assert.deepEqual(exportMigDevices(H100_80GB, layout, { pinned: false }), { "1g.10gb": 1, "1c.3g.40gb": 3 });
  });

  it("writes pinned keys that reproduce the layout slot for slot", () => {
    const devices = exportMigDevices(H100_80GB, layout, { pinned: true });
    assert.deepEqual(devices, { "1g.10gb@0": 1, "1c.3g.40gb@4": 3 });
    const text = [
      "version: tessera/v1",
      "mig-configs:",
      "  current:",
      "    - devices: all",
      "      mig-enabled: true",
      "      mig-devices:",
      ...Object.entries(devices).map(([k, n]) => `        "${k}": ${n}`),
    ].join("\n");
    const gpu = hostGpu(0, H100_80GB, layout);
    const plan = planHost(resolveMigConfig(parseMigSpec(text, "export.yaml"), null, [gpu]).targets);
    assert.ok(
      plan.gpus.every((g) => g.feasible && !g.changed),
      "re-applying the export changes nothing",
    );
  });

  it("exports nothing for a GPU with MIG disabled", () => {
    assert.deepEqual(
      exportMigDevices(
        H100_80GB,
        { mode: { current: "disabled", pending: "disabled" }, instances: [] },
        { pinned: true },
      ),
      {},
    );
  });
});

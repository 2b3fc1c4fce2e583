import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { LeaseSchema } from "../../src/gen/tessera/v1/agent_pb.js";
import { HealthState, NodeSchema } from "../../src/gen/tessera/v1/node_pb.js";
import {
  GeometryCache,
  healthStateFromName,
  leaseReportFromProto,
  nodeReportFromProto,
} from "../../src/scheduler/agent-report.js";
import { H100_80GB } from "../mig/geometries.js";

const profiles = H100_80GB.profiles.map((p) => ({
  id: p.id,
  name: p.name,
  sliceCount: p.sliceCount,
  memorySlices: p.memorySlices,
  memoryMib: BigInt(p.memoryMiB),
  multiprocessorCount: p.multiprocessorCount,
  maxInstances: p.maxInstances,
  placementStarts: [...p.placements],
}));

function node(gpus: number, over: { badProfiles?: boolean } = {}) {
  return create(NodeSchema, {
    nodeId: "n1",
    simulated: true,
    dynamicMig: true,
    labels: { rack: "r1" },
    gpus: Array.from({ length: gpus }, (_, i) => ({
      index: i,
      uuid: `GPU-n1-${i}`,
      name: H100_80GB.model,
      pciDeviceId: H100_80GB.pciDeviceId,
      memoryTotalMib: BigInt(H100_80GB.totalMemoryMiB),
      health: { state: i === 1 ? HealthState.UNHEALTHY : HealthState.HEALTHY, reasons: i === 1 ? ["XID 79"] : [] },
      migCapable: true,
      migEnabled: true,
      profiles: over.badProfiles && i === 0 ? [{ ...profiles[0], name: "not a profile" }] : profiles,
      instances: [
        {
          gpuInstanceId: 3,
          profileId: 9,
          profileName: "3g.40gb",
          placement: { start: 4, size: 4 },
          computeInstances: [{ computeInstanceId: 0, profileId: 2, uuid: `MIG-n1-${i}`, processIds: [42] }],
        },
      ],
    })),
    topology: [{ gpuIndex: 0, gpuUuid: "GPU-n1-0", nearestNic: "mlx5_0", distance: "PIX", rdmaDegraded: false }],
    unavailableGpus: [{ index: 9, error: "GPU_IS_LOST" }],
  });
}

describe("agent reports", () => {
  it("turns a NodeAgent Node into the view's report, parsing each model's geometry once", () => {
    const cache = new GeometryCache();
    const { node: r, geometryErrors } = nodeReportFromProto(node(3), cache);
    assert.deepEqual(geometryErrors, []);
    assert.equal(r.gpus.length, 3);
    assert.equal(r.gpus[0]?.geometry, r.gpus[2]?.geometry, "one geometry object per model");
    assert.deepEqual(r.gpus[1]?.health, { state: "unhealthy", reasons: ["XID 79"] });
    assert.deepEqual(r.gpus[0]?.instances[0], {
      giId: 3,
      profileId: 9,
      placement: { start: 4, size: 4 },
      computeInstances: [{ ciId: 0, profileId: 2, uuid: "MIG-n1-0", processIds: [42] }],
    });
    assert.deepEqual(r.topology[0], {
      gpuUuid: "GPU-n1-0",
      nearestNic: "mlx5_0",
      distance: "PIX",
      rdmaDegraded: false,
    });
    assert.deepEqual(r.unavailableGpus, [{ index: 9, error: "GPU_IS_LOST" }]);
    assert.equal(nodeReportFromProto(node(1), cache).node.gpus[0]?.geometry, r.gpus[0]?.geometry);
  });

  it("keeps a GPU whose geometry it cannot use, without geometry, and says why", () => {
    const { node: r, geometryErrors } = nodeReportFromProto(node(2, { badProfiles: true }), new GeometryCache());
    assert.equal(r.gpus[0]?.geometry, null);
    assert.notEqual(r.gpus[1]?.geometry, null);
    assert.match(geometryErrors[0] ?? "", /^GPU 0 \(GPU-n1-0\): NVIDIA H100 80GB HBM3: /);
  });

  it("reads whole-GPU and MIG leases", () => {
    const whole = leaseReportFromProto(
      create(LeaseSchema, {
        workloadId: "w",
        tenant: "t",
        gpuIndex: 2,
        gpuUuid: "GPU-x",
        createdAt: timestampFromMs(5),
      }),
    );
    assert.deepEqual([whole.migUuid, whole.placement, whole.gpuInstanceId, whole.createdAtMs], [null, null, null, 5]);
    const mig = leaseReportFromProto(
      create(LeaseSchema, {
        workloadId: "w+1",
        migUuid: "MIG-y",
        gpuInstanceId: 0,
        computeInstanceId: 0,
        placement: { start: 6, size: 1 },
        instanceCreated: true,
      }),
    );
    assert.deepEqual(
      [mig.migUuid, mig.placement, mig.gpuInstanceId, mig.instanceCreated],
      ["MIG-y", { start: 6, size: 1 }, 0, true],
    );
  });

  it("reads health event states", () => {
    assert.equal(healthStateFromName("degraded"), "degraded");
    assert.equal(healthStateFromName("on fire"), "unknown");
  });
});

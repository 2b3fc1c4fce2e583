import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  computeTopology,
  type GpuLocation,
  type NicLocation,
  type PciDistance,
  pciDistance,
  splitPciPath,
  switchAncestors,
} from "../../src/fabric/topology.js";

// A host bridge with one switch (GPU + NIC), a nested switch tree, a second
// host bridge on NUMA 0 and one on NUMA 1.
const SW = "/devices/pci0000:15/0000:15:01.0/0000:16:00.0";
const P = {
  gpu: `${SW}/0000:17:03.0/0000:1b:00.0`,
  nicSameSwitch: `${SW}/0000:17:00.0/0000:18:00.0`,
  nicFn1SameSwitch: `${SW}/0000:17:00.0/0000:18:00.1`,
  nicOtherRootPort: "/devices/pci0000:15/0000:15:03.0/0000:19:00.0/0000:1a:00.0/0000:1c:00.0",
  nicDirectOnRootPort: "/devices/pci0000:15/0000:15:05.0/0000:1d:00.0",
  // outer switch 0000:31:00.0, inner switches 0000:33:00.0 and 0000:36:00.0
  nestedGpu: "/devices/pci0000:30/0000:30:01.0/0000:31:00.0/0000:32:00.0/0000:33:00.0/0000:34:00.0/0000:35:00.0",
  nestedNicSameInner:
    "/devices/pci0000:30/0000:30:01.0/0000:31:00.0/0000:32:00.0/0000:33:00.0/0000:34:01.0/0000:3a:00.0",
  nestedNicOtherInner:
    "/devices/pci0000:30/0000:30:01.0/0000:31:00.0/0000:32:04.0/0000:36:00.0/0000:37:00.0/0000:38:00.0",
  otherBridge: "/devices/pci0000:3d/0000:3d:01.0/0000:3e:00.0/0000:3f:00.0/0000:40:00.0",
  otherSocket: "/devices/pci0000:97/0000:97:01.0/0000:98:00.0/0000:99:00.0/0000:9a:00.0",
  virtual: "/devices/virtual/net/rxe0",
};

describe("splitPciPath and switchAncestors", () => {
  it("splits a canonical path into its root complex and functions", () => {
    assert.deepEqual(splitPciPath(P.gpu), {
      rootComplex: "pci0000:15",
      functions: ["0000:15:01.0", "0000:16:00.0", "0000:17:03.0", "0000:1b:00.0"],
    });
    assert.equal(splitPciPath(P.virtual), undefined);
    assert.equal(splitPciPath("/devices/pci0000:15"), undefined);
  });

  it("walks up two levels at a time like NCCL, so a switch is one node", () => {
    assert.deepEqual(switchAncestors(["0000:15:01.0", "0000:16:00.0", "0000:17:03.0", "0000:1b:00.0"]), [
      "0000:16:00.0",
    ]);
    assert.deepEqual(switchAncestors(["0000:15:05.0", "0000:1d:00.0"]), []);
  });
});

describe("pciDistance", () => {
  const cases: [string, string, number | undefined, string, number | undefined, PciDistance | undefined][] = [
    ["GPU and NIC behind one switch", P.gpu, 0, P.nicSameSwitch, 0, "PIX"],
    ["the second function of the same NIC", P.gpu, 0, P.nicFn1SameSwitch, 0, "PIX"],
    ["under one inner switch of a nested tree", P.nestedGpu, 0, P.nestedNicSameInner, 0, "PIX"],
    ["under different inner switches of one outer switch", P.nestedGpu, 0, P.nestedNicOtherInner, 0, "PXB"],
    ["different root ports of one host bridge", P.gpu, 0, P.nicOtherRootPort, 0, "PHB"],
    ["a NIC directly on another root port", P.gpu, 0, P.nicDirectOnRootPort, 0, "PHB"],
    ["different host bridges on one NUMA node", P.gpu, 0, P.otherBridge, 0, "NODE"],
    ["different NUMA nodes", P.gpu, 0, P.otherSocket, 1, "SYS"],
    [
      "different host bridges, NUMA unknown on both (single socket)",
      P.gpu,
      undefined,
      P.otherBridge,
      undefined,
      "NODE",
    ],
    ["NUMA known on one side only", P.gpu, 0, P.otherBridge, undefined, "SYS"],
    ["a virtual device has no PCI distance", P.gpu, 0, P.virtual, 0, undefined],
    ["paths with the sysfs root in front", `/sys${P.gpu}`, 0, `/sys${P.nicSameSwitch}`, 0, "PIX"],
  ];
  for (const [name, a, na, b, nb, expected] of cases) {
    it(`${name}: ${expected ?? "undefined"}`, () => {
      assert.equal(pciDistance({ path: a, numaNode: na }, { path: b, numaNode: nb }), expected);
      assert.equal(pciDistance({ path: b, numaNode: nb }, { path: a, numaNode: na }), expected, "symmetric");
    });
  }
});

describe("computeTopology", () => {
  const gpu = (index: number, path: string | undefined, numaNode = 0): GpuLocation => ({
    index,
    pciBusId: `00000000:${(0x1b + index).toString(16).toUpperCase()}:00.0`,
    pciAddress: `0000:${(0x1b + index).toString(16)}:00.0`,
    pciPath: path,
    numaNode,
  });
  const nic = (device: string, path: string, healthy = true, numaNode = 0, candidate = true): NicLocation => ({
    device,
    pciAddress: path.slice(path.lastIndexOf("/") + 1),
    pciPath: path,
    numaNode,
    healthy,
    candidate,
  });

  it("picks the nearest healthy NIC and says GPUDirect RDMA is usable at PIX", () => {
    const t = computeTopology([gpu(0, P.gpu)], [nic("mlx5_0", P.nicSameSwitch), nic("mlx5_1", P.otherBridge)]);
    assert.deepEqual(t.gpus[0]?.nearestHealthyNic, { device: "mlx5_0", distance: "PIX" });
    assert.equal(t.gpus[0]?.gpuDirectRdma, true);
    assert.equal(t.gpus[0]?.flag, undefined);
    assert.deepEqual(
      t.gpus[0]?.distances.map((d) => d.distance),
      ["PIX", "NODE"],
    );
  });

  it("flags a GPU whose rail NIC is unhealthy and whose next NIC is farther than PXB", () => {
    const t = computeTopology(
      [gpu(0, P.gpu)],
      [nic("mlx5_0", P.nicSameSwitch, false), nic("mlx5_1", P.otherBridge), nic("mlx5_2", P.otherSocket, true, 1)],
    );
    assert.deepEqual(t.gpus[0]?.nearestHealthyNic, { device: "mlx5_1", distance: "NODE" });
    assert.equal(t.gpus[0]?.gpuDirectRdma, false);
    assert.match(t.gpus[0]?.flag ?? "", /nearest healthy NIC mlx5_1 is NODE: GPUDirect RDMA needs PXB or closer/);
  });

  it("accepts PXB for GPUDirect RDMA", () => {
    const t = computeTopology([gpu(0, P.nestedGpu)], [nic("mlx5_0", P.nestedNicOtherInner)]);
    assert.equal(t.gpus[0]?.nearestHealthyNic?.distance, "PXB");
    assert.equal(t.gpus[0]?.gpuDirectRdma, true);
  });

  it("skips NICs that are not candidates (storage) and flags GPUs with no healthy NIC", () => {
    const t = computeTopology(
      [gpu(0, P.gpu)],
      [nic("mlx5_0", P.nicSameSwitch, false), nic("mlx5_1", P.nicOtherRootPort, true, 0, false)],
    );
    assert.equal(t.gpus[0]?.nearestHealthyNic, undefined);
    assert.equal(t.gpus[0]?.flag, "no healthy NIC");
  });

  it("flags a GPU that is not in sysfs", () => {
    const t = computeTopology([gpu(3, undefined)], [nic("mlx5_0", P.nicSameSwitch)]);
    assert.match(t.gpus[0]?.flag ?? "", /0000:1e:00.0 not found in sysfs/);
    assert.equal(t.gpus[0]?.distances[0]?.distance, undefined);
  });
});

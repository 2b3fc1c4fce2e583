import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fragmentationOf } from "../../src/mig/fragmentation.js";
import { applyXid } from "../../src/scheduler/cluster.js";
import type { FleetNodeSpec } from "../../src/scheduler/in-process-fleet.js";
import {
  type Candidate,
  decide,
  explain,
  type PlacementRequest,
  type RejectionCode,
} from "../../src/scheduler/placement.js";
import { A30_24GB, A100_40GB, A100_80GB, H100_80GB } from "../mig/geometries.js";
import {
  constraints,
  dynamicNode,
  occupy,
  profileRequest,
  shapeRequest,
  staticNode,
  type World,
  world,
} from "./helpers.js";

const BALANCED: [string, number][] = [
  ["3g.40gb", 4],
  ["2g.20gb", 2],
  ["1g.10gb", 1],
  ["1g.10gb", 0],
];

function placed(w: World, r: PlacementRequest): Candidate {
  const out = decide(w.view, r, w.ctx());
  if (!out.ok) assert.fail(out.summary);
  return out.decision;
}

function refused(w: World, r: PlacementRequest): Partial<Record<RejectionCode, number>> {
  const out = decide(w.view, r, w.ctx());
  if (out.ok) assert.fail(`expected no placement, got ${JSON.stringify(out.decision.slices)}`);
  return out.rejectionCounts;
}

interface Case {
  readonly name: string;
  readonly nodes: readonly FleetNodeSpec[];
  readonly setup?: (w: World) => void;
  readonly request: PlacementRequest;
  readonly expect:
    | {
        readonly nodeId: string;
        readonly gpuIndex?: number;
        readonly action?: "carve" | "use-device";
        readonly profile?: string;
        readonly start?: number;
        readonly wasteMiB?: number;
      }
    | { readonly refused: RejectionCode };
}

const cases: Case[] = [
  {
    name: "a dynamic node carves a new instance",
    nodes: [dynamicNode("n1", H100_80GB)],
    request: profileRequest("3g.40gb"),
    expect: { nodeId: "n1", action: "carve", profile: "3g.40gb", start: 4 },
  },
  {
    name: "a static node hands out an existing free device",
    nodes: [staticNode("n1", H100_80GB, BALANCED)],
    request: profileRequest("2g.20gb"),
    expect: { nodeId: "n1", action: "use-device", profile: "2g.20gb", start: 2 },
  },
  {
    name: "a static node never carves",
    nodes: [staticNode("n1", H100_80GB, BALANCED)],
    request: profileRequest("4g.40gb"),
    expect: { refused: "no-free-device" },
  },
  {
    name: "a static node serves a shape with the smallest adequate free device",
    nodes: [staticNode("n1", H100_80GB, BALANCED)],
    request: shapeRequest(15_000, 0.2),
    expect: { nodeId: "n1", action: "use-device", profile: "2g.20gb", start: 2, wasteMiB: 20096 - 15_000 },
  },
  {
    name: "a leased device is not free",
    nodes: [staticNode("n1", H100_80GB, [["3g.40gb", 4]])],
    setup: (w) => {
      w.fleet.allocateNow({
        nodeId: "n1",
        address: null,
        workloadId: "held",
        tenant: "x",
        target: { kind: "device", deviceUuid: "MIG-n1-0-init0" },
      });
      w.sync();
    },
    request: profileRequest("3g.40gb"),
    expect: { refused: "no-free-device" },
  },
  {
    name: "a shape maps to the smallest adequate profile of an H100 (1g.20gb), waste reported",
    nodes: [dynamicNode("n1", H100_80GB)],
    request: shapeRequest(15_360, 0.1),
    expect: { nodeId: "n1", profile: "1g.20gb", wasteMiB: 20096 - 15_360 },
  },
  {
    name: "the same shape needs a 3g.20gb on an A100-40GB",
    nodes: [dynamicNode("n1", A100_40GB)],
    request: shapeRequest(15_360, 0.1),
    expect: { nodeId: "n1", profile: "3g.20gb", wasteMiB: 19968 - 15_360 },
  },
  {
    name: "a shape goes to the model where it costs less",
    nodes: [dynamicNode("a", A100_40GB), dynamicNode("b", H100_80GB)],
    request: shapeRequest(15_360, 0.1),
    expect: { nodeId: "b", profile: "1g.20gb" },
  },
  {
    name: "compute fraction 3/7 asks for 3g, not 4g",
    nodes: [dynamicNode("n1", H100_80GB)],
    request: shapeRequest(1, 3 / 7),
    expect: { nodeId: "n1", profile: "3g.40gb" },
  },
  {
    name: "a shape no profile holds is refused",
    nodes: [dynamicNode("n1", H100_80GB)],
    request: shapeRequest(100_000, 0.5),
    expect: { refused: "no-adequate-profile" },
  },
  {
    name: "a profile the model lacks is refused",
    nodes: [dynamicNode("n1", A100_40GB)],
    request: profileRequest("3g.40gb"),
    expect: { refused: "no-profile" },
  },
  {
    name: "GPU models constrain",
    nodes: [dynamicNode("a", H100_80GB), dynamicNode("b", A100_80GB)],
    request: shapeRequest(9000, 0.1, { constraints: constraints({ gpuModels: ["a100"] }) }),
    expect: { nodeId: "b" },
  },
  {
    name: "RDMA needs the nearest healthy NIC within PXB",
    nodes: [
      dynamicNode("a", H100_80GB, 1, { nic: () => ({ nearestNic: "mlx5_0", distance: "SYS", rdmaDegraded: true }) }),
      dynamicNode("b", H100_80GB, 1, { nic: () => ({ nearestNic: "mlx5_3", distance: "PXB", rdmaDegraded: false }) }),
    ],
    request: profileRequest("1g.10gb", { constraints: constraints({ needsRdma: true }) }),
    expect: { nodeId: "b" },
  },
  {
    name: "RDMA refused when no GPU has a near NIC",
    nodes: [dynamicNode("a", H100_80GB, 1, { nic: () => null })],
    request: profileRequest("1g.10gb", { constraints: constraints({ needsRdma: true }) }),
    expect: { refused: "gpu-rdma" },
  },
  {
    name: "node labels constrain",
    nodes: [
      dynamicNode("a", H100_80GB, 1, { labels: { zone: "a" } }),
      dynamicNode("b", H100_80GB, 1, { labels: { zone: "b", tier: "gold" } }),
    ],
    request: profileRequest("1g.10gb", { constraints: constraints({ nodeLabels: { zone: "b" } }) }),
    expect: { nodeId: "b" },
  },
  {
    name: "an unhealthy GPU is never chosen",
    nodes: [dynamicNode("n1", H100_80GB, 2)],
    setup: (w) => {
      w.fleet.setHealth("n1", 0, { state: "unhealthy", reasons: ["XID 79 at 10:00: GPU has fallen off the bus"] });
      w.sync();
    },
    request: profileRequest("7g.80gb"),
    expect: { nodeId: "n1", gpuIndex: 1 },
  },
  {
    name: "a GPU with a recent critical XID is held out",
    nodes: [dynamicNode("n1", H100_80GB, 1)],
    setup: (w) => {
      applyXid(w.view, "GPU-n1-0", 79, w.clock.now);
    },
    request: profileRequest("1g.10gb"),
    expect: { refused: "gpu-xid" },
  },
  {
    name: "a degraded GPU takes work only when nothing healthy can",
    nodes: [dynamicNode("n1", H100_80GB, 2)],
    setup: (w) => {
      occupy(w, "n1", 1, "4g.40gb", 0);
      w.fleet.setHealth("n1", 1, { state: "degraded", reasons: ["XID 92: high single-bit ECC rate"] });
      w.sync();
    },
    // Growth alone would pick GPU 1 (next to its 4g); health comes first.
    request: profileRequest("3g.40gb"),
    expect: { nodeId: "n1", gpuIndex: 0 },
  },
  {
    name: "a simulated node is refused",
    nodes: [dynamicNode("n1", H100_80GB, 1, { simulated: true })],
    request: profileRequest("1g.10gb"),
    expect: { refused: "node-simulated" },
  },
  {
    name: "a simulated node is used when the request allows it",
    nodes: [dynamicNode("n1", H100_80GB, 1, { simulated: true })],
    request: profileRequest("1g.10gb", { allowSimulated: true }),
    expect: { nodeId: "n1" },
  },
  {
    name: "a node whose agent stopped renewing takes nothing new",
    nodes: [dynamicNode("n1", H100_80GB)],
    setup: (w) => {
      w.clock.now += 4_000_000;
    },
    request: profileRequest("1g.10gb"),
    expect: { refused: "node-unavailable" },
  },
  {
    name: "the one +me instance per GPU (A30: 1g+me and 2g+me share the media engines)",
    nodes: [dynamicNode("n1", A30_24GB)],
    setup: (w) => {
      occupy(w, "n1", 0, "1g.6gb+me", 3);
    },
    request: profileRequest("2g.12gb+me"),
    expect: { refused: "media-extensions-taken" },
  },
  {
    name: "a profile at its maximum instance count",
    nodes: [dynamicNode("n1", H100_80GB)],
    setup: (w) => {
      occupy(w, "n1", 0, "4g.40gb", 0);
    },
    request: profileRequest("4g.40gb"),
    expect: { refused: "max-instances" },
  },
  {
    name: "no legal placement left",
    nodes: [dynamicNode("n1", H100_80GB)],
    setup: (w) => {
      occupy(w, "n1", 0, "3g.40gb", 0);
      occupy(w, "n1", 0, "1g.10gb", 4);
    },
    request: profileRequest("3g.40gb"),
    expect: { refused: "no-free-placement" },
  },
];

describe("placement", () => {
  for (const c of cases) {
    it(c.name, () => {
      const w = world(c.nodes);
      c.setup?.(w);
      if ("refused" in c.expect) {
        const counts = refused(w, c.request);
        assert.ok((counts[c.expect.refused] ?? 0) > 0, `expected ${c.expect.refused} in ${JSON.stringify(counts)}`);
        return;
      }
      const d = placed(w, c.request);
      const s = d.slices[0];
      assert.ok(s);
      assert.equal(s.nodeId, c.expect.nodeId);
      if (c.expect.gpuIndex !== undefined) assert.equal(s.gpuIndex, c.expect.gpuIndex);
      if (c.expect.action) assert.equal(s.action, c.expect.action);
      if (c.expect.profile) assert.equal(s.profileName, c.expect.profile);
      if (c.expect.start !== undefined) assert.equal(s.placement.start, c.expect.start);
      if (c.expect.wasteMiB !== undefined) assert.equal(s.waste?.memoryMiB, c.expect.wasteMiB);
      // Explain's best candidate is the decision.
      const e = explain(w.view, c.request, w.ctx());
      assert.deepEqual(e.decision, d);
    });
  }
});

describe("placement: fragmentation scoring", () => {
  it("puts a 1g on an empty H100 where a later 4g and 3g still fit", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const d = placed(w, profileRequest("1g.10gb"));
    assert.equal(d.slices[0]?.placement.start, 6);
    occupy(w, "n1", 0, "1g.10gb", 6);
    const gpu = w.view.gpuByUuid.get("GPU-n1-0");
    assert.ok(gpu);
    const frag = fragmentationOf(H100_80GB, w.fleet.snapshot("n1").node.gpus[0]?.instances ?? []);
    const fits = Object.fromEntries(frag.fits.map((f) => [f.name, f.placeable]));
    assert.equal(fits["4g.40gb"], 1);
    assert.equal(fits["3g.40gb"], 1);
  });

  it("without the fragmentation term (best fit) the 1g takes slice 0, where no 4g fits any more", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const out = decide(w.view, profileRequest("1g.10gb"), w.ctx("best-fit"));
    assert.ok(out.ok);
    assert.equal(out.decision.slices[0]?.placement.start, 0);
  });

  it("puts a 3g on slices 4–7, keeping the 4g placement", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    assert.equal(placed(w, profileRequest("3g.40gb")).slices[0]?.placement.start, 4);
  });

  it("puts a 2g beside a 1g@6 rather than into slices 0–3", () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    occupy(w, "n1", 0, "1g.10gb", 6);
    assert.equal(placed(w, profileRequest("2g.20gb")).slices[0]?.placement.start, 4);
  });

  it("fills a partly used GPU before opening an empty one", () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    occupy(w, "n1", 1, "4g.40gb", 0);
    const s = placed(w, profileRequest("2g.20gb")).slices[0];
    assert.equal(s?.gpuIndex, 1);
    assert.equal(s?.placement.start, 4);
  });

  it("of GPUs that tie, takes the one on the fuller node", () => {
    const w = world([dynamicNode("a", H100_80GB, 2), dynamicNode("b", H100_80GB, 1)]);
    occupy(w, "a", 0, "4g.40gb", 0);
    occupy(w, "b", 0, "4g.40gb", 0);
    const d = placed(w, profileRequest("3g.40gb"));
    assert.equal(d.nodeId, "b");
    assert.equal(d.slices[0]?.placement.start, 4);
  });

  it("prefers a free existing device to carving on a fresh GPU", () => {
    const w = world([staticNode("s", H100_80GB, [["1g.10gb", 6]]), dynamicNode("d", H100_80GB)]);
    const s = placed(w, profileRequest("1g.10gb")).slices[0];
    assert.equal(s?.action, "use-device");
    assert.equal(s?.nodeId, "s");
  });
});

describe("placement: count > 1", () => {
  it("places every slice on one node", () => {
    const w = world([dynamicNode("a", H100_80GB, 1), dynamicNode("b", H100_80GB, 2)]);
    const d = placed(w, profileRequest("3g.40gb", { count: 3 }));
    assert.equal(d.nodeId, "b");
    assert.equal(d.slices.length, 3);
    assert.ok(d.slices.every((s) => s.nodeId === "b"));
    const spots = new Set(d.slices.map((s) => `${s.gpuUuid}@${s.placement.start}`));
    assert.equal(spots.size, 3);
  });

  it("refuses when no single node holds all of them, though the cluster would", () => {
    const w = world([dynamicNode("a", H100_80GB, 1), dynamicNode("b", H100_80GB, 1)]);
    const counts = refused(w, profileRequest("3g.40gb", { count: 3 }));
    assert.equal(counts["node-too-small"], 2);
    const e = explain(w.view, profileRequest("3g.40gb", { count: 3 }), w.ctx());
    assert.match(e.rejections[0]?.detail ?? "", /only 2 of 3 slices fit/);
  });

  it("counts slices on existing devices and new instances alike", () => {
    const w = world([staticNode("s", H100_80GB, BALANCED, 1)]);
    const d = placed(w, shapeRequest(9000, 0.1, { count: 4 }));
    assert.deepEqual(d.slices.map((s) => s.profileName).sort(), ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]);
  });
});

describe("explain", () => {
  it("gives every rejection a reason a person can act on, and ranks the candidates", () => {
    const w = world([
      dynamicNode("a-sim", H100_80GB, 1, { simulated: true }),
      dynamicNode("b-labels", H100_80GB, 1, { labels: { zone: "x" } }),
      dynamicNode("c", H100_80GB, 3),
    ]);
    w.fleet.setHealth("c", 0, { state: "unhealthy", reasons: ["XID 79: fallen off the bus"] });
    w.sync();
    occupy(w, "c", 1, "7g.80gb", 0);
    const r = profileRequest("3g.40gb", { constraints: constraints({ nodeLabels: { zone: "x" } }) });
    const e = explain(w.view, r, w.ctx());
    const reasons = Object.fromEntries(
      e.rejections.map((x) => [`${x.nodeId}/${x.gpuIndex}`, `${x.code}: ${x.detail}`]),
    );
    assert.match(reasons["a-sim/null"] ?? "", /node-simulated: simulated node/);
    assert.match(reasons["c/null"] ?? "", /node-labels: labels do not match: zone=x \(node has none\)/);
    assert.equal(e.candidates.length, 2, "3g@0 and 3g@4 on b-labels");
    assert.equal(e.decision?.slices[0]?.placement.start, 4);
    assert.ok((e.candidates[0]?.score.fragmentationGrowth ?? 0) < (e.candidates[1]?.score.fragmentationGrowth ?? 0));

    const open = explain(w.view, profileRequest("3g.40gb"), w.ctx());
    const c = Object.fromEntries(open.rejections.map((x) => [`${x.nodeId}/${x.gpuIndex}`, `${x.code}: ${x.detail}`]));
    assert.match(c["c/0"] ?? "", /gpu-unhealthy: unhealthy: XID 79/);
    assert.match(c["c/1"] ?? "", /max-instances|no-free-placement|compute-slices/);
    assert.deepEqual(
      open.mappings.map((m) => m.profileName),
      ["3g.40gb"],
    );
  });

  it("names the profile a shape maps to on every model, with its waste", () => {
    const w = world([dynamicNode("a", A100_40GB), dynamicNode("b", H100_80GB)]);
    const e = explain(w.view, shapeRequest(15_360, 0.1), w.ctx());
    const byModel = Object.fromEntries(e.mappings.map((m) => [m.model, `${m.profileName} +${m.waste?.memoryMiB}`]));
    assert.equal(byModel[A100_40GB.model], "3g.20gb +4608");
    assert.equal(byModel[H100_80GB.model], "1g.20gb +4736");
  });
});

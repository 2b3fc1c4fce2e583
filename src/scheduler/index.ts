// The scheduler's core without the network: the cluster view fed by agents,
// pure placement, quotas, decisions against an agent port, demand, bounds.
// The gRPC service (proto → these types → proto) sits on top of this.

export * from "./baselines.js";
export * from "./bounds.js";
export * from "./cluster.js";
export * from "./decisions.js";
export * from "./demand.js";
export * from "./demand-histogram.js";
export * from "./describe.js";
export * from "./geometry-tables.js";
export * from "./in-process-fleet.js";
export * from "./offline.js";
export * from "./placement.js";
export * from "./profiles.js";
export * from "./quota.js";

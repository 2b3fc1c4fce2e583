// The MIG manager's pure core: geometry, names, fragmentation, specs,
// selection, planning. The NVML-touching apply builds on these.

export * from "./export.js";
export * from "./fragmentation.js";
export * from "./geometry.js";
export * from "./plan.js";
export * from "./plan-render.js";
export * from "./profile-name.js";
export * from "./select.js";
export * from "./simulate.js";
export * from "./slot-map.js";
export * from "./spec.js";
export * from "./types.js";

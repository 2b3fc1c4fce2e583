// Fabric health: RDMA/InfiniBand link health and GPU↔NIC topology from sysfs.
// What the agent, the scheduler and diagnostics consume.
export { collectFabric, type FabricCollection, type FabricCollectorOptions } from "./collect.js";
export {
  type CounterChange,
  type CounterSample,
  counterWidthBits,
  diffCounters,
  isSaturated,
  PMA_COUNTER_WIDTH_BITS,
  type PortTraffic,
} from "./counters.js";
export { diffFabricHealth, type FabricEvent, type FabricProblemEvent, type PortHealthEvent } from "./events.js";
export { type FabricExpectations, loadExpectedFabric, parseExpectedFabric } from "./expect-config.js";
export { type GpuDescription, type GpuSource, scanSysfsGpus, sysfsGpuSource } from "./gpu-source.js";
export {
  type CounterThreshold,
  DEFAULT_THRESHOLDS,
  type ExpectedFabric,
  type ExpectedPort,
  type ExpectedPortCount,
  evaluateFabric,
  exitCodeFor,
  type FabricHealth,
  type FabricProblem,
  type FabricStatus,
  type HealthReason,
  type HealthThresholds,
  isPortUp,
  mergeThresholds,
  type PortHealth,
  type PortRole,
  type PortVerdict,
  type ReasonCode,
} from "./health.js";
export { advancePortHistory, type PortHistory } from "./history.js";
export { type LinkRate, SysfsParseError, toNvmlBusId, toSysfsPciAddress } from "./parse.js";
export {
  DEFAULT_PROC_ROOT,
  DEFAULT_SYSFS_ROOT,
  type FabricReading,
  type RdmaDeviceReading,
  type RdmaPortReading,
  readBootId,
  readFabric,
  SysfsRootError,
} from "./read.js";
export {
  type FabricCounterState,
  loadSnapshots,
  SnapshotCorruptError,
  type SnapshotLoad,
  SnapshotWriteError,
  saveSnapshots,
} from "./snapshot-store.js";
export {
  computeTopology,
  type FabricTopology,
  GDR_MAX_DISTANCE,
  type GpuLocation,
  type GpuNicAffinity,
  locateGpus,
  type NicLocation,
  nicLocations,
  type PciDistance,
  pciDistance,
} from "./topology.js";

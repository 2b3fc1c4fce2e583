// GPU- and compute-instance profile info through the versioned "V" calls. The struct version is
// chosen once per library: v3, else v2 (the V function answers ARGUMENT_VERSION_MISMATCH for a
// version it does not know), else the v1 function; the first definite answer fixes the choice.
import { COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, GPU_INSTANCE_PROFILE_CAPS } from "./constants.js";
import { type NvmlContext, readText, readU64 } from "./context.js";
import { layout, structVersion } from "./ffi-types.js";
import { Rc } from "./return-codes.js";
import type { ComputeInstanceProfile, GpuInstanceProfile } from "./types.js";

type Version = 3 | 2 | 1;

export interface ProfileRead<T> {
  readonly rc: number;
  /** The function that gave rc (for error messages). */
  readonly operation: string;
  readonly profile: T | undefined;
}

/** GPU-instance profile at index constant `index` (NVML_GPU_INSTANCE_PROFILE_*). */
export function readGpuInstanceProfile(
  ctx: NvmlContext,
  device: bigint,
  index: number,
): ProfileRead<GpuInstanceProfile> {
  const buf = ctx.struct;
  let last: ProfileRead<GpuInstanceProfile> = {
    rc: Rc.FUNCTION_NOT_FOUND,
    operation: "nvmlDeviceGetGpuInstanceProfileInfoV",
    profile: undefined,
  };
  for (const version of candidates(ctx.gpuInstanceProfileVersion)) {
    let rc: number;
    let operation: string;
    if (version === 1) {
      operation = "nvmlDeviceGetGpuInstanceProfileInfo";
      buf.fill(0, 0, layout().giProfileV1.size);
      rc = ctx.fn.nvmlDeviceGetGpuInstanceProfileInfo(device, index, buf);
    } else {
      operation = "nvmlDeviceGetGpuInstanceProfileInfoV";
      const L = version === 3 ? layout().giProfileV3 : layout().giProfileV2;
      buf.fill(0, 0, L.size);
      buf.writeUInt32LE(structVersion(L.size, version), L.off.version);
      rc = ctx.fn.nvmlDeviceGetGpuInstanceProfileInfoV(device, index, buf);
    }
    last = { rc, operation, profile: undefined };
    if (rc === Rc.ARGUMENT_VERSION_MISMATCH || rc === Rc.FUNCTION_NOT_FOUND) continue;
    if (rc !== Rc.SUCCESS) return last;
    ctx.gpuInstanceProfileVersion = version;
    return { rc, operation, profile: decodeGpuInstanceProfile(buf, version, index) };
  }
  return last;
}

/** Compute-instance profile at index `index` (NVML_COMPUTE_INSTANCE_PROFILE_*) of a GPU instance. */
export function readComputeInstanceProfile(
  ctx: NvmlContext,
  gpuInstance: bigint,
  index: number,
  engineProfile: number = COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
): ProfileRead<ComputeInstanceProfile> {
  const buf = ctx.struct;
  let last: ProfileRead<ComputeInstanceProfile> = {
    rc: Rc.FUNCTION_NOT_FOUND,
    operation: "nvmlGpuInstanceGetComputeInstanceProfileInfoV",
    profile: undefined,
  };
  for (const version of candidates(ctx.computeInstanceProfileVersion)) {
    let rc: number;
    let operation: string;
    if (version === 1) {
      operation = "nvmlGpuInstanceGetComputeInstanceProfileInfo";
      buf.fill(0, 0, layout().ciProfileV1.size);
      rc = ctx.fn.nvmlGpuInstanceGetComputeInstanceProfileInfo(gpuInstance, index, engineProfile, buf);
    } else {
      operation = "nvmlGpuInstanceGetComputeInstanceProfileInfoV";
      const L = version === 3 ? layout().ciProfileV3 : layout().ciProfileV2;
      buf.fill(0, 0, L.size);
      buf.writeUInt32LE(structVersion(L.size, version), L.off.version);
      rc = ctx.fn.nvmlGpuInstanceGetComputeInstanceProfileInfoV(gpuInstance, index, engineProfile, buf);
    }
    last = { rc, operation, profile: undefined };
    if (rc === Rc.ARGUMENT_VERSION_MISMATCH || rc === Rc.FUNCTION_NOT_FOUND) continue;
    if (rc !== Rc.SUCCESS) return last;
    ctx.computeInstanceProfileVersion = version;
    return { rc, operation, profile: decodeComputeInstanceProfile(buf, version, index, engineProfile) };
  }
  return last;
}

function candidates(chosen: Version | undefined): readonly Version[] {
  return chosen === undefined ? [3, 2, 1] : [chosen];
}

export function decodeGpuInstanceProfile(buf: Buffer, version: Version, index: number): GpuInstanceProfile {
  const common = (L: {
    off: {
      id: number;
      sliceCount: number;
      instanceCount: number;
      multiprocessorCount: number;
      copyEngineCount: number;
      decoderCount: number;
      encoderCount: number;
      jpegCount: number;
      ofaCount: number;
      memorySizeMB: number;
    };
  }) => ({
    index,
    id: buf.readUInt32LE(L.off.id),
    sliceCount: buf.readUInt32LE(L.off.sliceCount),
    instanceCount: buf.readUInt32LE(L.off.instanceCount),
    multiprocessorCount: buf.readUInt32LE(L.off.multiprocessorCount),
    copyEngineCount: buf.readUInt32LE(L.off.copyEngineCount),
    decoderCount: buf.readUInt32LE(L.off.decoderCount),
    encoderCount: buf.readUInt32LE(L.off.encoderCount),
    jpegCount: buf.readUInt32LE(L.off.jpegCount),
    ofaCount: buf.readUInt32LE(L.off.ofaCount),
    memorySizeMiB: readU64(buf, L.off.memorySizeMB),
  });
  if (version === 3) {
    const L = layout().giProfileV3;
    const capabilities = buf.readUInt32LE(L.off.capabilities);
    return {
      ...common(L),
      name: readText(buf, L.off.name, 96),
      p2pSupported: (capabilities & GPU_INSTANCE_PROFILE_CAPS.p2p) !== 0,
      capabilities,
    };
  }
  const L = version === 2 ? layout().giProfileV2 : layout().giProfileV1;
  return {
    ...common(L),
    name: version === 2 ? readText(buf, layout().giProfileV2.off.name, 96) : undefined,
    p2pSupported: buf.readUInt32LE(L.off.isP2pSupported) !== 0,
    capabilities: undefined,
  };
}

export function decodeComputeInstanceProfile(
  buf: Buffer,
  version: Version,
  index: number,
  engineProfile: number,
): ComputeInstanceProfile {
  const L = version === 3 ? layout().ciProfileV3 : version === 2 ? layout().ciProfileV2 : layout().ciProfileV1;
  return {
    index,
    engineProfile,
    id: buf.readUInt32LE(L.off.id),
    name: version === 1 ? undefined : readText(buf, layout().ciProfileV2.off.name, 96),
    sliceCount: buf.readUInt32LE(L.off.sliceCount),
    instanceCount: buf.readUInt32LE(L.off.instanceCount),
    multiprocessorCount: buf.readUInt32LE(L.off.multiprocessorCount),
    sharedCopyEngineCount: buf.readUInt32LE(L.off.sharedCopyEngineCount),
    sharedDecoderCount: buf.readUInt32LE(L.off.sharedDecoderCount),
    sharedEncoderCount: buf.readUInt32LE(L.off.sharedEncoderCount),
    sharedJpegCount: buf.readUInt32LE(L.off.sharedJpegCount),
    sharedOfaCount: buf.readUInt32LE(L.off.sharedOfaCount),
    capabilities: version === 3 ? buf.readUInt32LE(layout().ciProfileV3.off.capabilities) : undefined,
  };
}

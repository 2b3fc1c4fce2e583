// The watch stream's hot path: a sweep encoded straight from the domain snapshot into the wire
// bytes of `WatchNodeResponse{sample: NodeSample}`, with protobuf-es's BinaryWriter and no message
// objects in between. It is several times cheaper than building messages and running the
// reflective toBinary, and it runs once per sweep whoever watches. Field numbers follow
// proto/tessera/v1/telemetry.proto; test/agent/sample-encoder.test.ts checks that decoding these
// bytes gives exactly what proto.ts's sampleProto builds.
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type {
  GpuIdentity,
  GpuReading,
  GpuTelemetry,
  MigDeviceReading,
  ProcessReading,
} from "../telemetry/sweep-types.js";
import type { NodeSnapshot } from "./node-state.js";

const V = WireType.Varint;
const L = WireType.LengthDelimited;
const D = WireType.Bit64;

/** WatchNodeResponse.sample */
const RESPONSE_SAMPLE = 2;

function u32(w: BinaryWriter, field: number, v: number | undefined): void {
  if (v !== undefined) w.tag(field, V).uint32(v);
}

/** An implicit-presence uint32: proto3 leaves zero out. */
function u32Implicit(w: BinaryWriter, field: number, v: number): void {
  if (v !== 0) w.tag(field, V).uint32(v);
}

function u64(w: BinaryWriter, field: number, v: number | bigint | undefined): void {
  if (v === undefined) return;
  w.tag(field, V).uint64(typeof v === "number" ? Math.round(v) : v);
}

function bool(w: BinaryWriter, field: number, v: boolean | undefined): void {
  if (v !== undefined) w.tag(field, V).bool(v);
}

function str(w: BinaryWriter, field: number, v: string): void {
  if (v !== "") w.tag(field, L).string(v);
}

function processes(w: BinaryWriter, field: number, list: readonly ProcessReading[]): void {
  for (const p of list) {
    w.tag(field, L).fork();
    u32Implicit(w, 1, p.pid);
    str(w, 2, p.name ?? "");
    u64(w, 3, p.usedMemoryMiB);
    w.join();
  }
}

function migDevice(w: BinaryWriter, m: MigDeviceReading): void {
  w.tag(18, L).fork();
  str(w, 1, m.uuid);
  u32Implicit(w, 2, m.gpuInstanceId);
  u32Implicit(w, 3, m.computeInstanceId);
  str(w, 4, m.profileName);
  u64(w, 5, m.memoryUsedMiB);
  u64(w, 6, m.memoryTotalMiB);
  u32Implicit(w, 8, m.processes.length);
  processes(w, 9, m.processes);
  u32Implicit(w, 10, m.migIndex);
  w.join();
}

function gpu(w: BinaryWriter, g: GpuReading): void {
  const id = g.identity;
  const t = g.telemetry;
  w.tag(2, L).fork();
  u32Implicit(w, 1, id.index);
  str(w, 2, id.uuid);
  if (t) {
    u32(w, 3, t.utilizationPercent);
    u32(w, 4, t.memoryUtilizationPercent);
    u64(w, 5, t.memoryUsedMiB);
    u64(w, 6, t.memoryFreeMiB);
    u32(w, 7, t.temperatureC);
    u32(w, 8, t.powerMilliwatts);
    u64(w, 9, t.energyMillijoules);
    u32(w, 10, t.smClockMHz);
    u32(w, 11, t.memoryClockMHz);
    u64(w, 12, t.clockEventReasons);
    u64(w, 13, t.eccCorrectedVolatile);
    u64(w, 14, t.eccUncorrectedVolatile);
    u64(w, 15, t.pcieReplayCounter);
    u32(w, 16, t.pcieGeneration);
    u32(w, 17, t.pcieWidth);
    for (const m of t.migDevices) migDevice(w, m);
  }
  if (g.lost) w.tag(19, V).bool(true);
  if (t) {
    u64(w, 20, t.memoryReservedMiB);
    u64(w, 21, id.memoryTotalMiB);
    u32(w, 22, t.powerLimitMilliwatts);
    u64(w, 23, t.eccCorrectedAggregate);
    u64(w, 24, t.eccUncorrectedAggregate);
    bool(w, 25, t.eccEnabled);
    u32(w, 26, t.remappedRows?.corrected);
    u32(w, 27, t.remappedRows?.uncorrected);
    bool(w, 28, t.remappedRows?.pending);
    bool(w, 29, t.remappedRows?.failure);
    bool(w, 30, t.retiredPagesPending);
    for (const n of t.clockEventReasonNames) w.tag(31, L).string(n);
    processes(w, 32, t.processes);
  }
  w.join();
}

/** The bytes of one GPU's `GpuSample` field, for a cache. */
function gpuBytes(g: GpuReading): Uint8Array {
  const w = new BinaryWriter();
  gpu(w, g);
  return w.finish();
}

/**
 * Encodes samples, reusing the bytes of every GPU whose readings are the same objects as at the
 * last sweep (the sampler hands over unchanged readings as the same objects).
 */
export class SampleEncoder {
  readonly #gpus = new WeakMap<GpuTelemetry, { identity: GpuIdentity; bytes: Uint8Array }>();

  /** `WatchNodeResponse{sample}` for a snapshot, as wire bytes. */
  response(s: NodeSnapshot): Buffer {
    const w = new BinaryWriter();
    w.tag(RESPONSE_SAMPLE, L).fork();
    encodeSample(w, s, (g) => {
      const t = g.telemetry;
      if (!t || g.lost) return gpuBytes(g);
      const cached = this.#gpus.get(t);
      if (cached?.identity === g.identity) return cached.bytes;
      const bytes = gpuBytes(g);
      this.#gpus.set(t, { identity: g.identity, bytes });
      return bytes;
    });
    w.join();
    const b = w.finish();
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  }
}

/** The bytes of `NodeSample` for a snapshot. */
export function encodeSample(
  w: BinaryWriter,
  s: NodeSnapshot,
  gpuField: (g: GpuReading) => Uint8Array = gpuBytes,
): BinaryWriter {
  const sweep = s.sweep;
  const seconds = Math.floor(sweep.startedAtMs / 1000);
  const nanos = (sweep.startedAtMs - seconds * 1000) * 1_000_000;
  w.tag(1, L).fork();
  if (seconds !== 0) w.tag(1, V).int64(seconds);
  if (nanos !== 0) w.tag(2, V).int32(nanos);
  w.join();
  for (const g of sweep.gpus) w.raw(gpuField(g));
  if (sweep.durationMs !== 0) w.tag(4, D).double(sweep.durationMs);
  if (s.stale) w.tag(5, V).bool(true);
  if (sweep.sweep !== 0) w.tag(6, V).uint64(sweep.sweep);
  return w;
}

/** `WatchNodeResponse{sample}` for a snapshot, as wire bytes. */
export function encodeSampleResponse(s: NodeSnapshot): Buffer {
  const w = new BinaryWriter();
  w.tag(RESPONSE_SAMPLE, L).fork();
  encodeSample(w, s);
  w.join();
  const b = w.finish();
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

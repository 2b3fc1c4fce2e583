// GPU Performance Monitoring (Hopper+): metrics are computed between two samples taken ≥100 ms
// apart. A sampler owns two NVML sample buffers and alternates between them, so a periodic
// caller gets a metric set per period from one sampleGet each.
import { GPM_METRICS, GPM_METRICS_GET_VERSION } from "./constants.js";
import type { NvmlContext } from "./context.js";
import type { NvmlDeviceRef } from "./errors.js";
import { GPM_METRICS_MAX, layout } from "./ffi-types.js";
import { Rc, returnCodeName } from "./return-codes.js";
import type { GpmMetricValue } from "./types.js";

export class GpmSampler {
  readonly #ctx: NvmlContext;
  readonly #device: bigint;
  readonly #ref: NvmlDeviceRef;
  readonly #gpuInstanceId: number | undefined;
  #older: bigint;
  #newer: bigint;
  #taken = 0;
  #freed = false;
  // nvmlGpmMetricsGet_t with the 98-entry metrics array of the portable header: the library only
  // touches metrics[0..numMetrics), and numMetrics is kept ≤ 98.
  readonly #request = Buffer.alloc(layout().gpmMetricsGet.size);

  /** @internal Created by Device.gpmSampler(). */
  constructor(ctx: NvmlContext, device: bigint, ref: NvmlDeviceRef, gpuInstanceId: number | undefined) {
    this.#ctx = ctx;
    this.#device = device;
    this.#ref = ref;
    this.#gpuInstanceId = gpuInstanceId;
    this.#older = this.#alloc();
    try {
      this.#newer = this.#alloc();
    } catch (err) {
      ctx.fn.nvmlGpmSampleFree(this.#older);
      throw err;
    }
  }

  /** Takes a sample; after two, metrics() compares the last two. */
  sample(): void {
    const ctx = this.#ctx;
    if (this.#freed) throw ctx.error(Rc.INVALID_ARGUMENT, "nvmlGpmSampleGet", this.#ref, "sampler was freed");
    const target = this.#older; // overwrite the oldest, then it becomes the newest
    const rc =
      this.#gpuInstanceId === undefined
        ? ctx.fn.nvmlGpmSampleGet(this.#device, target)
        : ctx.fn.nvmlGpmMigSampleGet(this.#device, this.#gpuInstanceId, target);
    if (rc !== Rc.SUCCESS) {
      const op = this.#gpuInstanceId === undefined ? "nvmlGpmSampleGet" : "nvmlGpmMigSampleGet";
      throw ctx.error(rc, op, this.#ref, this.#scope());
    }
    this.#older = this.#newer;
    this.#newer = target;
    this.#taken++;
  }

  /** Metrics between the last two samples; each entry carries its own return code. */
  metrics(metricIds: readonly number[]): GpmMetricValue[] {
    const ctx = this.#ctx;
    if (this.#taken < 2) {
      throw ctx.error(Rc.UNINITIALIZED, "nvmlGpmMetricsGet", this.#ref, `${this.#scope()}: take two samples first`);
    }
    if (metricIds.length === 0 || metricIds.length > GPM_METRICS_MAX) {
      throw ctx.error(Rc.INVALID_ARGUMENT, "nvmlGpmMetricsGet", this.#ref, `1..${GPM_METRICS_MAX} metrics per call`);
    }
    const L = layout().gpmMetricsGet;
    const M = layout().gpmMetric;
    const buf = this.#request;
    buf.fill(0);
    buf.writeUInt32LE(GPM_METRICS_GET_VERSION, L.off.version);
    buf.writeUInt32LE(metricIds.length, L.off.numMetrics);
    buf.writeBigUInt64LE(this.#older, L.off.sample1);
    buf.writeBigUInt64LE(this.#newer, L.off.sample2);
    metricIds.forEach((id, i) => {
      buf.writeUInt32LE(id, L.off.metrics + i * M.size + M.off.metricId);
    });
    const rc = ctx.fn.nvmlGpmMetricsGet(buf);
    if (rc !== Rc.SUCCESS) throw ctx.error(rc, "nvmlGpmMetricsGet", this.#ref, this.#scope());
    return metricIds.map((_, i) => {
      const at = L.off.metrics + i * M.size;
      const entryRc = buf.readInt32LE(at + M.off.nvmlReturn);
      return {
        metricId: buf.readUInt32LE(at + M.off.metricId),
        nvmlReturn: returnCodeName(entryRc),
        value: entryRc === Rc.SUCCESS ? buf.readDoubleLE(at + M.off.value) : undefined,
      };
    });
  }

  /** SM utilization (NVML_GPM_METRIC_SM_UTIL, percent) between the last two samples; absent if unsupported. */
  smUtilizationPercent(): number | undefined {
    const [sm] = this.metrics([GPM_METRICS.smUtil]);
    return sm?.value;
  }

  /** Frees both NVML samples; the sampler is unusable afterwards. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    const ctx = this.#ctx;
    const a = ctx.fn.nvmlGpmSampleFree(this.#older);
    const b = ctx.fn.nvmlGpmSampleFree(this.#newer);
    if (a !== Rc.SUCCESS) throw ctx.error(a, "nvmlGpmSampleFree", this.#ref);
    if (b !== Rc.SUCCESS) throw ctx.error(b, "nvmlGpmSampleFree", this.#ref);
  }

  #alloc(): bigint {
    const out = new BigUint64Array(1);
    const rc = this.#ctx.fn.nvmlGpmSampleAlloc(out);
    if (rc !== Rc.SUCCESS) throw this.#ctx.error(rc, "nvmlGpmSampleAlloc", this.#ref, this.#scope());
    return out[0] as bigint;
  }

  #scope(): string {
    return this.#gpuInstanceId === undefined ? "whole GPU" : `GPU instance ${this.#gpuInstanceId}`;
  }
}

// Per-tenant quotas in slices, not devices (reference/scheduling.md §6.3,
// Kueue#10108: a 7g holds 7 compute and 8 memory slices, a 1g one of each).
// Usage counts every lease the view holds for the tenant, including
// reservations the agents have not confirmed, so two concurrent requests
// cannot both slip under the limit.

import { z } from "zod";
import { InputError, TesseraError } from "../errors.js";
import type { SliceUsage } from "./cluster.js";

export interface SliceQuota {
  /** Null: unlimited. */
  readonly computeSlices: number | null;
  readonly memorySlices: number | null;
}

export interface QuotaConfig {
  /** For tenants the config does not name. */
  readonly defaults: SliceQuota;
  readonly tenants: ReadonlyMap<string, SliceQuota>;
}

export const UNLIMITED: SliceQuota = { computeSlices: null, memorySlices: null };

export function unlimitedQuotas(): QuotaConfig {
  return { defaults: UNLIMITED, tenants: new Map() };
}

export type QuotaDimension = "computeSlices" | "memorySlices";

/** A request would take a tenant past its quota: gRPC RESOURCE_EXHAUSTED. */
export class QuotaExceededError extends TesseraError {
  readonly tenant: string;
  readonly quota: QuotaDimension;
  readonly limit: number;
  readonly used: number;
  readonly requested: number;

  constructor(tenant: string, quota: QuotaDimension, limit: number, used: number, requested: number) {
    const unit = quota === "computeSlices" ? "compute slices" : "memory slices";
    super(
      "TESSERA_QUOTA_EXCEEDED",
      `tenant ${tenant}: quota ${quota} is ${limit} ${unit}; ${used} in use (leases and reservations) ` +
        `+ ${requested} requested = ${used + requested}`,
    );
    this.tenant = tenant;
    this.quota = quota;
    this.limit = limit;
    this.used = used;
    this.requested = requested;
  }
}

export function quotaOf(config: QuotaConfig, tenant: string): SliceQuota {
  return config.tenants.get(tenant) ?? config.defaults;
}

/** Throws QuotaExceededError when `used + requested` passes either limit of the tenant. */
export function checkQuota(config: QuotaConfig, tenant: string, used: SliceUsage, requested: SliceUsage): void {
  const q = quotaOf(config, tenant);
  for (const dim of ["computeSlices", "memorySlices"] as const) {
    const limit = q[dim];
    if (limit !== null && used[dim] + requested[dim] > limit) {
      throw new QuotaExceededError(tenant, dim, limit, used[dim], requested[dim]);
    }
  }
}

const quotaSchema = z.strictObject({
  computeSlices: z.number().int().nonnegative().nullable().optional(),
  memorySlices: z.number().int().nonnegative().nullable().optional(),
});

/** The `quotas` section's schema, for configs that validate it in place (with file, line and column). */
export const quotaSectionSchema = z.strictObject({
  defaults: quotaSchema.optional(),
  tenants: z.record(z.string().min(1), quotaSchema).optional(),
});

function toQuota(q: z.infer<typeof quotaSchema> | undefined): SliceQuota {
  return { computeSlices: q?.computeSlices ?? null, memorySlices: q?.memorySlices ?? null };
}

/**
 * Parses the `quotas` section of the scheduler's config (already read from
 * YAML or JSON): `{ defaults?: {computeSlices?, memorySlices?}, tenants?:
 * {<tenant>: {...}} }`. A missing limit is unlimited. Throws InputError
 * naming the field.
 */
export function parseQuotaConfig(raw: unknown, file?: string): QuotaConfig {
  const result = quotaSectionSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = (issue?.path ?? []).filter((p): p is string | number => typeof p !== "symbol");
    const unknown = issue?.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const field = ["quotas", ...path, ...(unknown === undefined ? [] : [unknown])].join(".");
    const why = unknown === undefined ? (issue?.message ?? "invalid") : "unknown field";
    throw new InputError(`${field}: ${why}`, file === undefined ? {} : { file });
  }
  return quotaConfigOf(result.data);
}

/** The QuotaConfig of a section `quotaSectionSchema` accepted. */
export function quotaConfigOf(section: z.infer<typeof quotaSectionSchema>): QuotaConfig {
  const tenants = new Map(Object.entries(section.tenants ?? {}).map(([k, v]) => [k, toQuota(v)]));
  return { defaults: toQuota(section.defaults), tenants };
}

// The lease checkpoint: the whole ledger in one file, replaced atomically (temp file, fsync, rename,
// fsync of the directory) inside a checksummed envelope. A file that does not verify is never
// trusted: the agent refuses to start, naming it, unless told to set it aside.
import { rename } from "node:fs/promises";
import { z } from "zod";
import { TesseraError } from "../errors.js";
import { CorruptStateError, readSealedJson, sealJson, writeFileAtomic } from "../util/atomic-file.js";
import type { LedgerState } from "./types.js";

export const CHECKPOINT_KIND = "tessera.leases";
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_FILE = "leases.json";

export class LeaseCheckpointCorruptError extends TesseraError {
  readonly path: string;

  constructor(path: string, reason: string) {
    super(
      "TESSERA_LEASES_CORRUPT",
      `lease checkpoint ${path} cannot be trusted (${reason}); refusing to start. ` +
        "Restore it from a backup, or start once with --discard-corrupt-leases to set it aside and start with no leases",
    );
    this.path = path;
  }
}

const placement = z.object({ start: z.number().int().nonnegative(), size: z.number().int().positive() }).strict();
const opt = <T extends z.ZodType>(t: T) => t.nullable();

const leaseSchema = z
  .object({
    workloadId: z.string().min(1),
    tenant: z.string(),
    gpuIndex: z.number().int().nonnegative(),
    gpuUuid: z.string().min(1),
    migUuid: opt(z.string()),
    gpuInstanceId: opt(z.number().int()),
    computeInstanceId: opt(z.number().int()),
    profileId: opt(z.number().int()),
    profileName: z.string(),
    placement: opt(placement),
    createdAtMs: z.number(),
    instanceCreated: z.boolean(),
  })
  .strict();

const pendingSchema = z
  .object({
    workloadId: z.string().min(1),
    tenant: z.string(),
    gpuIndex: z.number().int().nonnegative(),
    gpuUuid: z.string().min(1),
    profileId: z.number().int(),
    profileName: z.string(),
    placement,
    startedAtMs: z.number(),
  })
  .strict();

const orphanSchema = z
  .object({
    gpuUuid: z.string().min(1),
    gpuInstanceId: z.number().int(),
    profileId: z.number().int(),
    placementStart: z.number().int(),
    reason: z.string(),
  })
  .strict();

const payloadSchema = z
  .object({
    savedAtMs: z.number(),
    leases: z.array(leaseSchema),
    pending: z.array(pendingSchema),
    orphans: z.array(orphanSchema),
  })
  .strict();

type Payload = z.infer<typeof payloadSchema>;

const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);
const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

export function encodeCheckpoint(state: LedgerState, savedAtMs: number): string {
  const payload: Payload = {
    savedAtMs,
    leases: [...state.leases.values()].map((l) => ({
      ...l,
      migUuid: orNull(l.migUuid),
      gpuInstanceId: orNull(l.gpuInstanceId),
      computeInstanceId: orNull(l.computeInstanceId),
      profileId: orNull(l.profileId),
      placement: orNull(l.placement),
    })),
    pending: [...state.pending.values()],
    orphans: [...state.orphans],
  };
  return sealJson(CHECKPOINT_KIND, CHECKPOINT_VERSION, payload);
}

export function decodePayload(payload: unknown, path: string): LedgerState {
  const parsed = payloadSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LeaseCheckpointCorruptError(path, `${issue?.path.join(".") || "(payload)"}: ${issue?.message}`);
  }
  const data = parsed.data;
  return {
    leases: new Map(
      data.leases.map((l) => [
        l.workloadId,
        {
          ...l,
          migUuid: orUndefined(l.migUuid),
          gpuInstanceId: orUndefined(l.gpuInstanceId),
          computeInstanceId: orUndefined(l.computeInstanceId),
          profileId: orUndefined(l.profileId),
          placement: orUndefined(l.placement),
        },
      ]),
    ),
    pending: new Map(data.pending.map((p) => [p.workloadId, p])),
    orphans: data.orphans,
  };
}

/** The ledger in `path`; undefined when there is no checkpoint yet. Throws LeaseCheckpointCorruptError. */
export async function readCheckpoint(path: string): Promise<LedgerState | undefined> {
  let payload: unknown;
  try {
    payload = await readSealedJson(path, CHECKPOINT_KIND, CHECKPOINT_VERSION);
  } catch (err) {
    if (err instanceof CorruptStateError)
      throw new LeaseCheckpointCorruptError(path, err.message.replace(`${path}: `, ""));
    throw err;
  }
  return payload === undefined ? undefined : decodePayload(payload, path);
}

export async function writeCheckpoint(path: string, state: LedgerState, savedAtMs: number): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(state, savedAtMs), 0o600);
}

/** Moves a corrupt checkpoint aside (`<path>.corrupt-<ms>`) and returns where it went. */
export async function setAsideCheckpoint(path: string, nowMs: number): Promise<string> {
  const aside = `${path}.corrupt-${nowMs}`;
  await rename(path, aside);
  return aside;
}

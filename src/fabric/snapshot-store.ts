// Counter history on disk, so rates and windows survive an agent restart and
// the boot id tells a reboot from a counter reset. One file per state dir:
//
//   tessera-fabric-snapshots 1 sha256=<hex of the body>\n
//   <body: JSON>\n
//
// Written atomically (temp file, fsync, rename, fsync of the directory); a
// file whose checksum or shape does not verify is reported and ignored,
// never trusted.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { errorMessage, TesseraError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { PortHistory } from "./history.js";

export const SNAPSHOT_FILE_NAME = "counters.snapshot";
const MAGIC = "tessera-fabric-snapshots";
const FORMAT_VERSION = 1;

export interface FabricCounterState {
  /** The sysfs root the samples came from; history of another root is not reused. */
  sysfsRoot: string;
  ports: Map<string, PortHistory>;
}

export class SnapshotCorruptError extends TesseraError {
  constructor(reason: string) {
    super("TESSERA_FABRIC_SNAPSHOT_CORRUPT", `fabric counter snapshot is corrupt: ${reason}`);
  }
}

export class SnapshotWriteError extends TesseraError {
  constructor(path: string, cause: unknown) {
    super("TESSERA_FABRIC_SNAPSHOT_WRITE", `cannot write fabric counter snapshot ${path}: ${errorMessage(cause)}`, {
      cause,
    });
  }
}

const decimal = z.string().regex(/^\d{1,20}$/);
const portHistorySchema = z
  .object({
    sample: z
      .object({
        atMs: z.number().finite(),
        bootId: z.string().nullable(),
        extended: z.boolean(),
        values: z.record(z.string(), decimal),
      })
      .strict(),
    up: z.boolean().nullable(),
    increments: z.array(
      z
        .object({
          atMs: z.number().finite(),
          intervalMs: z.number().positive(),
          deltas: z.record(z.string(), z.number().nonnegative()),
        })
        .strict(),
    ),
    transitions: z.array(z.object({ atMs: z.number().finite(), up: z.boolean() }).strict()),
  })
  .strict();
const bodySchema = z
  .object({
    version: z.literal(FORMAT_VERSION),
    savedAtMs: z.number().finite(),
    sysfsRoot: z.string(),
    ports: z.record(z.string(), portHistorySchema),
  })
  .strict();

/** Serializes the state with its checksum header. Pure. */
export function encodeSnapshots(state: FabricCounterState, savedAtMs: number): string {
  const ports: Record<string, z.infer<typeof portHistorySchema>> = {};
  for (const [key, h] of state.ports) {
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(h.sample.values)) values[k] = v.toString();
    ports[key] = {
      sample: { atMs: h.sample.atMs, bootId: h.sample.bootId ?? null, extended: h.sample.extended, values },
      up: h.up ?? null,
      increments: h.increments,
      transitions: h.transitions,
    };
  }
  const body = JSON.stringify({ version: FORMAT_VERSION, savedAtMs, sysfsRoot: state.sysfsRoot, ports });
  return `${MAGIC} ${FORMAT_VERSION} sha256=${sha256(body)}\n${body}\n`;
}

/** Parses and verifies a snapshot file; throws SnapshotCorruptError. Pure. */
export function decodeSnapshots(text: string): FabricCounterState & { savedAtMs: number } {
  const newline = text.indexOf("\n");
  if (newline < 0) throw new SnapshotCorruptError("no header line");
  const header = /^(\S+) (\d+) sha256=([0-9a-f]{64})$/.exec(text.slice(0, newline));
  if (!header || header[1] !== MAGIC) throw new SnapshotCorruptError("not a fabric snapshot file");
  if (Number(header[2]) !== FORMAT_VERSION) throw new SnapshotCorruptError(`unsupported format version ${header[2]}`);
  if (!text.endsWith("\n")) throw new SnapshotCorruptError("truncated (no final newline)");
  const body = text.slice(newline + 1, -1);
  if (sha256(body) !== header[3]) throw new SnapshotCorruptError("checksum mismatch");
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    throw new SnapshotCorruptError(`body is not JSON: ${errorMessage(err)}`);
  }
  const parsed = bodySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SnapshotCorruptError(`${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`);
  }
  const ports = new Map<string, PortHistory>();
  for (const [key, h] of Object.entries(parsed.data.ports)) {
    const values: Record<string, bigint> = {};
    for (const [k, v] of Object.entries(h.sample.values)) values[k] = BigInt(v);
    ports.set(key, {
      sample: { atMs: h.sample.atMs, bootId: h.sample.bootId ?? undefined, extended: h.sample.extended, values },
      up: h.up ?? undefined,
      increments: h.increments,
      transitions: h.transitions,
    });
  }
  return { sysfsRoot: parsed.data.sysfsRoot, savedAtMs: parsed.data.savedAtMs, ports };
}

export type SnapshotLoad =
  | { status: "missing"; path: string }
  | { status: "ok"; path: string; state: FabricCounterState; savedAtMs: number }
  | { status: "corrupt"; path: string; reason: string };

/** Reads the state dir's snapshot; a corrupt file is reported, not thrown, so the caller starts fresh. */
export async function loadSnapshots(stateDir: string): Promise<SnapshotLoad> {
  const path = join(stateDir, SNAPSHOT_FILE_NAME);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { status: "missing", path };
    return { status: "corrupt", path, reason: errorMessage(err) };
  }
  try {
    const { savedAtMs, ...state } = decodeSnapshots(text);
    return { status: "ok", path, state, savedAtMs };
  } catch (err) {
    if (err instanceof SnapshotCorruptError) return { status: "corrupt", path, reason: err.message };
    throw err;
  }
}

/** Writes the snapshot atomically: temp file, fsync, rename over the old one, fsync the directory. */
export async function saveSnapshots(stateDir: string, state: FabricCounterState, savedAtMs: number): Promise<string> {
  const path = join(stateDir, SNAPSHOT_FILE_NAME);
  try {
    await writeFileAtomic(path, encodeSnapshots(state, savedAtMs));
    return path;
  } catch (err) {
    throw new SnapshotWriteError(path, err);
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

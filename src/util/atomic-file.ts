// Durable state on disk: atomic replacement (temp file, fsync, rename, fsync of the directory) and a
// checksummed envelope that is verified when read, so a torn or edited file is never trusted.
import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { TesseraError } from "../errors.js";

/** A state file failed verification (bad JSON, wrong kind or version, checksum mismatch). */
export class CorruptStateError extends TesseraError {
  readonly path: string;

  constructor(path: string, reason: string) {
    super("TESSERA_STATE_CORRUPT", `${path}: ${reason}`);
    this.path = path;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with `data` so that a crash leaves either the old or the new content, never a mix. */
export async function writeFileAtomic(path: string, data: string, mode = 0o640): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o750 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const file = await open(tmp, "wx", mode);
    try {
      await file.writeFile(data, "utf8");
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    await syncDir(dir); // without this the rename itself may not survive a power loss
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined); // the write error is the one worth reporting
    throw err;
  }
}

/** Removes `path` durably (the directory entry is synced); absent files are fine. */
export async function removeFileDurable(path: string): Promise<void> {
  await rm(path, { force: true });
  await syncDir(dirname(path)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

interface Envelope {
  kind: string;
  version: number;
  sha256: string;
  payload: unknown;
}

function digest(payloadJson: string): string {
  return createHash("sha256").update(payloadJson, "utf8").digest("hex");
}

/** Wraps a JSON payload with its kind, version and checksum. */
export function sealJson(kind: string, version: number, payload: unknown): string {
  const payloadJson = JSON.stringify(payload);
  const envelope: Envelope = { kind, version, sha256: digest(payloadJson), payload };
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

/** Verifies and unwraps what sealJson wrote; throws CorruptStateError naming the file. */
export function unsealJson(text: string, kind: string, version: number, path: string): unknown {
  let envelope: Partial<Envelope>;
  try {
    envelope = JSON.parse(text) as Partial<Envelope>;
  } catch (err) {
    throw new CorruptStateError(path, `not JSON (${(err as Error).message})`);
  }
  if (envelope.kind !== kind)
    throw new CorruptStateError(path, `expected a ${kind} file, found ${String(envelope.kind)}`);
  if (envelope.version !== version)
    throw new CorruptStateError(path, `version ${String(envelope.version)} (this build reads ${version})`);
  if (typeof envelope.sha256 !== "string" || envelope.sha256 !== digest(JSON.stringify(envelope.payload)))
    throw new CorruptStateError(path, "checksum mismatch: the file was truncated or edited");
  return envelope.payload;
}

/** Reads a sealed file; undefined when it does not exist. */
export async function readSealedJson(path: string, kind: string, version: number): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return unsealJson(text, kind, version, path);
}

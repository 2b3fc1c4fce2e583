// The apply journal: written (atomically, checksummed) before a GPU's first mutation and removed when
// its apply ends, so a crash at any step is found at the next start and finished or rolled back.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { readSealedJson, removeFileDurable, sealJson, writeFileAtomic } from "../util/atomic-file.js";
import type { MigMode } from "./types.js";

/** A layout by what can be recreated: profiles at placements with their compute-instance sizes. */
export interface JournaledLayout {
  readonly mode: MigMode;
  readonly instances: readonly {
    readonly profileId: number;
    readonly start: number;
    readonly ciSlices: readonly number[];
  }[];
}

export interface JournalRecord {
  readonly gpuIndex: number;
  readonly gpuUuid: string;
  readonly startedAt: string;
  readonly before: JournaledLayout;
  readonly target: JournaledLayout;
}

const KIND = "tessera.mig-journal";
const VERSION = 1;
const PREFIX = "mig-journal-";

export function journalPath(stateDir: string, gpuUuid: string): string {
  return join(stateDir, `${PREFIX}${gpuUuid}.json`);
}

export async function writeJournal(stateDir: string, record: JournalRecord): Promise<void> {
  await writeFileAtomic(journalPath(stateDir, record.gpuUuid), sealJson(KIND, VERSION, record), 0o600);
}

export async function removeJournal(stateDir: string, gpuUuid: string): Promise<void> {
  await removeFileDurable(journalPath(stateDir, gpuUuid));
}

/** Every journal left behind; a corrupt one throws CorruptStateError naming it. */
export async function readJournals(stateDir: string): Promise<JournalRecord[]> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: JournalRecord[] = [];
  for (const name of names.sort()) {
    if (!name.startsWith(PREFIX) || !name.endsWith(".json")) continue;
    const record = await readSealedJson(join(stateDir, name), KIND, VERSION);
    if (record !== undefined) out.push(record as JournalRecord);
  }
  return out;
}

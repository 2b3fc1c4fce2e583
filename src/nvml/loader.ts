import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import koffi, { type LibraryHandle } from "koffi";
import { type LoadAttempt, NvmlLibraryNotFoundError } from "./errors.js";

/** Environment variable naming the NVML library to load (a path); it wins over the system search. */
export const NVML_LIBRARY_ENV = "TESSERA_NVML_LIBRARY";
export const NVML_SONAME = "libnvidia-ml.so.1";

/** Where NVIDIA's installers and container toolkits put the driver's user-space libraries. */
export const DRIVER_LIBRARY_DIRS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/lib/wsl/lib",
  "/usr/local/nvidia/lib64",
  "/usr/local/nvidia/lib",
  "/run/nvidia/driver/usr/lib/x86_64-linux-gnu",
  "/run/nvidia/driver/usr/lib64",
];

export interface LoadedLibrary {
  readonly lib: LibraryHandle;
  /** The path (or soname) that loaded. */
  readonly path: string;
}

export interface LibrarySearchOptions {
  /** Load exactly this file; no fallback to the system search when it fails. */
  readonly libraryPath?: string;
  /** Environment to read TESSERA_NVML_LIBRARY from (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The paths tried, in order. An explicit path (option or env) is the only
 * candidate: silently falling back to the real driver when a test or an
 * operator asked for the simulator would be worse than failing.
 */
export function nvmlLibraryCandidates(options: LibrarySearchOptions = {}): string[] {
  const explicit = options.libraryPath ?? nonEmpty((options.env ?? process.env)[NVML_LIBRARY_ENV]);
  if (explicit !== undefined) return [explicit];
  return [NVML_SONAME, ...DRIVER_LIBRARY_DIRS.map((dir) => join(dir, NVML_SONAME))];
}

/** dlopen()s the first candidate that loads; throws NvmlLibraryNotFoundError listing every attempt. */
export function loadNvmlLibrary(options: LibrarySearchOptions = {}): LoadedLibrary {
  const attempts: LoadAttempt[] = [];
  for (const path of nvmlLibraryCandidates(options)) {
    try {
      return { lib: koffi.load(path), path };
    } catch (err) {
      attempts.push({ path, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  throw new NvmlLibraryNotFoundError(
    attempts,
    `set ${NVML_LIBRARY_ENV}=${simulatorLibraryPath()} or pass --sim (build it with \`npm install\`)`,
  );
}

const SIMULATOR_FILE = "libnvidia-ml-sim.so.1";
// node-gyp's make generator drops a leading "lib" from product_name, so a
// plain `node-gyp rebuild` of binding.gyp produces this name instead.
const SIMULATOR_FILE_GYP = "nvidia-ml-sim.so.1";

/** The simulator built by `npm install` (binding.gyp) under `<package root>/build/Release/`. */
export function simulatorLibraryPath(root: string = packageRoot()): string {
  const preferred = join(root, "build", "Release", SIMULATOR_FILE);
  if (existsSync(preferred)) return preferred;
  const gypName = join(root, "build", "Release", SIMULATOR_FILE_GYP);
  return existsSync(gypName) ? gypName : preferred;
}

/** The folder holding Tessera's package.json, found upwards from this module (works from src/ and dist/src/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && isTesseraManifest(manifest)) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json of tessera above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function isTesseraManifest(path: string): boolean {
  try {
    return (JSON.parse(readFileSync(path, "utf8")) as { name?: unknown }).name === "tessera";
  } catch {
    return false;
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

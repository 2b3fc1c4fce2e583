// Synchronous file access under a sysfs root. Sync on purpose: a full read
// of a DGX-class host is ~1000 tiny files, which costs about 1 ms with
// open/read/close and 30 ms through the libuv pool (measured). Because PMA
// counter reads on real hardware issue MADs to the HCA, the agent runs the
// whole read in a worker thread rather than on its event loop.
import { closeSync, existsSync, openSync, readdirSync, readSync, realpathSync } from "node:fs";
import { errorMessage } from "../errors.js";

export interface ReadProblem {
  /** Path relative to the sysfs root, e.g. `/class/infiniband/mlx5_0/ports/1/state`. */
  path: string;
  message: string;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : undefined;
}

/** Absent is normal for optional sysfs files; anything else is worth reporting. */
function isAbsent(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

export class SysfsFiles {
  readonly root: string;
  readonly problems: ReadProblem[] = [];
  private readonly buffer = Buffer.allocUnsafe(8192);
  private realRoot: string | undefined;

  private readonly prefix: string;

  constructor(root: string) {
    this.root = root;
    // Plain concatenation: path.join on ~1000 paths per read costs more than the reads' bookkeeping.
    this.prefix = root.endsWith("/") ? root : `${root}/`;
  }

  path(rel: string): string {
    return this.prefix + rel;
  }

  report(rel: string, message: string): void {
    this.problems.push({ path: rel, message });
  }

  /** File contents, or undefined when absent or unreadable (unreadable is recorded). */
  read(rel: string): string | undefined {
    let fd: number;
    try {
      fd = openSync(this.path(rel), "r");
    } catch (err) {
      if (!isAbsent(err)) this.report(rel, errorMessage(err));
      return undefined;
    }
    try {
      const n = readSync(fd, this.buffer, 0, this.buffer.length, 0);
      return this.buffer.toString("latin1", 0, n);
    } catch (err) {
      // sysfs answers EINVAL/EIO from the driver (e.g. a PMA query that failed).
      this.report(rel, errorMessage(err));
      return undefined;
    } finally {
      closeSync(fd);
    }
  }

  /** Parses a file; absent → undefined, parse failure → recorded and undefined. */
  parse<T>(rel: string, parser: (text: string) => T): T | undefined {
    const text = this.read(rel);
    if (text === undefined) return undefined;
    try {
      return parser(text);
    } catch (err) {
      this.report(rel, errorMessage(err));
      return undefined;
    }
  }

  /**
   * Directory entries; absent → []. Sorted naturally (`mlx5_2` before
   * `mlx5_10`) by default, by code unit with `natural: false` (cheaper, for
   * the long counter directories whose order is only cosmetic).
   */
  list(rel: string, natural = true): string[] {
    try {
      const entries = readdirSync(this.path(rel));
      return natural ? entries.sort(naturalCompare) : entries.sort();
    } catch (err) {
      if (!isAbsent(err)) this.report(rel, errorMessage(err));
      return [];
    }
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }

  /**
   * The canonical path of `rel` with every symlink resolved, relative to the
   * root (`/devices/pci0000:15/…/0000:18:00.0`); undefined when absent or
   * when a link points outside the root.
   */
  resolve(rel: string): string | undefined {
    try {
      this.realRoot ??= realpathSync.native(this.root);
      const real = realpathSync.native(this.path(rel));
      if (real === this.realRoot) return "/";
      const prefix = this.realRoot.endsWith("/") ? this.realRoot : `${this.realRoot}/`;
      if (!real.startsWith(prefix)) {
        this.report(rel, `resolves outside the sysfs root: ${real}`);
        return undefined;
      }
      return `/${real.slice(prefix.length)}`;
    } catch (err) {
      if (!isAbsent(err)) this.report(rel, errorMessage(err));
      return undefined;
    }
  }
}

/** Compares names with embedded numbers by value: `mlx5_2` < `mlx5_10`, `umad9` < `umad10`. */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    if (isDigit(ca) && isDigit(cb)) {
      let ei = i;
      let ej = j;
      while (ei < a.length && isDigit(a.charCodeAt(ei))) ei++;
      while (ej < b.length && isDigit(b.charCodeAt(ej))) ej++;
      const diff = Number(a.slice(i, ei)) - Number(b.slice(j, ej));
      if (diff !== 0) return diff;
      i = ei;
      j = ej;
    } else {
      if (ca !== cb) return ca - cb;
      i++;
      j++;
    }
  }
  return a.length - i - (b.length - j);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

// XIDs from the kernel log. NVML's event stream misses some XIDs (79, 119, 120 historically) and
// only sees events after a watch starts, so diagnostics also read what the driver printed
// (reference/monitoring.md §2.3, §6). The parser is pure over text; the readers below it are thin.
import { execFile } from "node:child_process";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../errors.js";

export interface KernelXid {
  readonly code: number;
  /** `0000:1b:00`: PCI domain:bus:device, lower case, as NVRM prints it (no function). */
  readonly pciAddress: string;
  readonly pid: number | undefined;
  readonly processName: string | undefined;
  /** GPU instance the driver named (MIG), when it did. */
  readonly gpuInstanceId: number | undefined;
  /** What the driver said after the code (and pid/name). */
  readonly message: string;
  /** Wall-clock time of the line, when the line (or the boot time) tells it. */
  readonly atMs: number | undefined;
  readonly line: string;
}

export interface KernelLogParseOptions {
  /** Wall-clock boot time: turns dmesg's and /dev/kmsg's seconds-since-boot into times. */
  readonly bootTimeMs?: number;
  /** Year for syslog-style stamps that carry none (`Jul  1 12:00:03`). */
  readonly year?: number;
}

// GPUd's pattern (xid/kmsg.go), tightened to a PCI address and tolerant of tokens after it.
const XID =
  /NVRM: Xid \((?:PCI:)?([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})(?:\.[0-7])?([^)]*)\).*?: (\d+)(?:,\s*|\s*$)(.*)$/;
const FALLEN_OFF_BUS =
  /NVRM: GPU ([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})(?:\.[0-7])?: GPU has fallen off the bus/;
const GPU_INSTANCE = /GPU-I:\s*(\d+)/;
const PID = /^pid=(?:'?<unknown>'?|(\d+)),\s*/;
const NAME = /^name=([^,]*),\s*/;

const KMSG_PREFIX = /^\d+,\d+,(\d+),[^;]*;/;
const DMESG_SECONDS = /^\[\s*(\d+\.\d+)\]\s*/;
const DMESG_TIME = /^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s*/;
const ISO_PREFIX = /^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+\S+\s+kernel:\s*/;
const SYSLOG_PREFIX = /^([A-Z][a-z]{2}\s+\d{1,2} \d\d:\d\d:\d\d)\s+\S+\s+kernel:\s*/;

/** The driver prints "fallen off the bus" next to its XID 79 line: one event, not two. */
const SAME_EVENT_MS = 60_000;

/**
 * Every XID in `text`, in order; a "GPU has fallen off the bus" line counts as XID 79 unless an
 * XID 79 line for the same GPU stands next to it.
 */
export function parseKernelLog(text: string, options: KernelLogParseOptions = {}): KernelXid[] {
  const all = parseLines(text, options);
  const xid79 = all.filter((x) => x.code === 79 && !x.busMessage);
  return all
    .filter(
      (x) =>
        !x.busMessage ||
        !xid79.some(
          (y) =>
            y.pciAddress === x.pciAddress &&
            (x.atMs === undefined || y.atMs === undefined || Math.abs(x.atMs - y.atMs) <= SAME_EVENT_MS),
        ),
    )
    .map(({ busMessage: _, ...x }) => x);
}

function parseLines(text: string, options: KernelLogParseOptions): (KernelXid & { busMessage: boolean })[] {
  const out: (KernelXid & { busMessage: boolean })[] = [];
  for (const raw of text.split(/\r?\n/)) {
    if (!raw.includes("NVRM")) continue;
    const { body, atMs } = stripTimestamp(raw, options);
    const xid = XID.exec(body);
    if (xid) {
      let rest = (xid[4] ?? "").trim();
      let pid: number | undefined;
      let processName: string | undefined;
      const p = PID.exec(rest);
      if (p) {
        pid = p[1] === undefined ? undefined : Number(p[1]);
        rest = rest.slice(p[0].length);
        const n = NAME.exec(rest);
        if (n) {
          processName = n[1] === "<unknown>" ? undefined : n[1];
          rest = rest.slice(n[0].length);
        }
      }
      const gi = GPU_INSTANCE.exec(xid[2] ?? "");
      out.push({
        code: Number(xid[3]),
        pciAddress: normalizePciPrefix(xid[1] as string),
        pid,
        processName,
        gpuInstanceId: gi ? Number(gi[1]) : undefined,
        message: rest.trim(),
        atMs,
        line: raw,
        busMessage: false,
      });
      continue;
    }
    const bus = FALLEN_OFF_BUS.exec(body);
    if (bus) {
      out.push({
        code: 79,
        pciAddress: normalizePciPrefix(bus[1] as string),
        pid: undefined,
        processName: undefined,
        gpuInstanceId: undefined,
        message: "GPU has fallen off the bus.",
        atMs,
        line: raw,
        busMessage: true,
      });
    }
  }
  return out;
}

function stripTimestamp(line: string, options: KernelLogParseOptions): { body: string; atMs: number | undefined } {
  const sinceBoot = (seconds: number) =>
    options.bootTimeMs === undefined ? undefined : options.bootTimeMs + Math.round(seconds * 1000);
  let m = KMSG_PREFIX.exec(line);
  if (m) return { body: line.slice(m[0].length), atMs: sinceBoot(Number(m[1]) / 1e6) };
  let atMs: number | undefined;
  let body = line;
  m = ISO_PREFIX.exec(body);
  if (m) {
    atMs = parseIso(m[1] as string);
    body = body.slice(m[0].length);
  } else {
    m = SYSLOG_PREFIX.exec(body);
    if (m) {
      const year = options.year ?? new Date().getFullYear();
      const parsed = Date.parse(`${m[1]} ${year}`);
      atMs = Number.isNaN(parsed) ? undefined : parsed;
      body = body.slice(m[0].length);
    }
  }
  m = DMESG_SECONDS.exec(body);
  if (m) return { body: body.slice(m[0].length), atMs: atMs ?? sinceBoot(Number(m[1])) };
  m = DMESG_TIME.exec(body);
  if (m) {
    const parsed = Date.parse(m[1] as string);
    return { body: body.slice(m[0].length), atMs: atMs ?? (Number.isNaN(parsed) ? undefined : parsed) };
  }
  return { body, atMs };
}

function parseIso(text: string): number | undefined {
  // journalctl's short-iso writes +0000; Date.parse wants +00:00.
  const normalized = text
    .replace(" ", "T")
    .replace(",", ".")
    .replace(/([+-]\d\d)(\d\d)$/, "$1:$2");
  const ms = Date.parse(normalized);
  return Number.isNaN(ms) ? undefined : ms;
}

/** `00000000:1B:00.0` (NVML) or `0000:1b:00` (NVRM) → `0000:1b:00`, the form NVRM prints. */
export function normalizePciPrefix(address: string): string {
  const parts = address.replace(/^PCI:/i, "").split(":");
  if (parts.length < 3) return address.toLowerCase();
  const [domain, bus, deviceFn] = parts as [string, string, string];
  const device = deviceFn.split(".")[0] as string;
  return `${Number.parseInt(domain, 16).toString(16).padStart(4, "0")}:${bus.toLowerCase()}:${device.toLowerCase()}`;
}

// ── reading ──────────────────────────────────────────────────────────────

export type KernelLogSource =
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "journal" }
  | { readonly kind: "kmsg"; readonly path?: string }
  /** The journal where journalctl works, else /dev/kmsg. */
  | { readonly kind: "auto" }
  | { readonly kind: "none" };

export interface KernelLogReading {
  /** What was read, for evidence ("journalctl -k", a file path). */
  readonly description: string;
  readonly text: string | undefined;
  /** Why nothing could be read. */
  readonly unavailable: string | undefined;
  readonly bootTimeMs: number | undefined;
}

export interface KernelLogReadOptions {
  /** Only lines since then (where the source can filter). */
  readonly sinceMs: number;
  /** For the boot time (`<procRoot>/stat` btime). */
  readonly procRoot: string;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

const JOURNAL_MAX_BYTES = 64 * 1024 * 1024;
const KMSG_MAX_RECORDS = 200_000;

export async function readKernelLog(source: KernelLogSource, options: KernelLogReadOptions): Promise<KernelLogReading> {
  const bootTimeMs = await readBootTimeMs(options.procRoot);
  const reading = (description: string, text: string | undefined, unavailable?: string): KernelLogReading => ({
    description,
    text,
    unavailable,
    bootTimeMs,
  });
  switch (source.kind) {
    case "none":
      return reading("none", undefined, "kernel log not read (--kernel-log none)");
    case "file":
      try {
        return reading(source.path, await readFile(source.path, "utf8"));
      } catch (err) {
        return reading(source.path, undefined, `cannot read ${source.path}: ${errorMessage(err)}`);
      }
    case "journal":
      return readJournal(options).then((r) => reading("journalctl -k", r.text, r.error));
    case "kmsg": {
      const path = source.path ?? "/dev/kmsg";
      const r = readKmsg(path);
      return reading(path, r.text, r.error);
    }
    case "auto": {
      const journal = await readJournal(options);
      if (journal.text !== undefined) return reading("journalctl -k", journal.text);
      const kmsg = readKmsg("/dev/kmsg");
      if (kmsg.text !== undefined) return reading("/dev/kmsg", kmsg.text);
      return reading("kernel log", undefined, `journalctl: ${journal.error}; /dev/kmsg: ${kmsg.error}`);
    }
  }
}

function readJournal(options: KernelLogReadOptions): Promise<{ text?: string; error?: string }> {
  const since = `@${Math.floor(options.sinceMs / 1000)}`;
  return new Promise((resolve) => {
    execFile(
      "journalctl",
      ["-k", "-o", "short-iso-precise", "--no-pager", "-q", "--since", since],
      {
        timeout: options.timeoutMs,
        maxBuffer: JOURNAL_MAX_BYTES,
        ...(options.signal ? { signal: options.signal } : {}),
      },
      (err, stdout) => resolve(err ? { error: errorMessage(err).split("\n")[0] ?? "failed" } : { text: stdout }),
    );
  });
}

/** /dev/kmsg, read without blocking until its end: one record per read(2). */
function readKmsg(path: string): { text?: string; error?: string } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { error: errorMessage(err) };
  }
  const buf = Buffer.alloc(16 * 1024);
  const records: string[] = [];
  try {
    while (records.length < KMSG_MAX_RECORDS) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") break;
        if (code === "EPIPE") continue; // records overwritten while reading: the next read resumes
        return { error: errorMessage(err) };
      }
      if (n === 0) break;
      records.push(buf.toString("utf8", 0, n).trimEnd());
    }
  } finally {
    closeSync(fd);
  }
  return { text: records.join("\n") };
}

/** `btime` of `<procRoot>/stat`, in ms; undefined when unreadable. */
export async function readBootTimeMs(procRoot: string): Promise<number | undefined> {
  try {
    const m = /^btime\s+(\d+)$/m.exec(await readFile(join(procRoot, "stat"), "utf8"));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

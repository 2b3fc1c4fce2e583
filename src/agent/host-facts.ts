// Static facts about the host, gathered once at start from node:os, /etc/os-release and
// /proc/cpuinfo. (systeminformation would shell out to a dozen commands for the same facts — osInfo
// alone runs `hostname -f` and friends synchronously — and the module costs the daemon about 2.5 MB
// of resident memory for good: measured with bench/agent-overhead.ts.)
import { readFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";

export interface HostFacts {
  readonly hostname: string;
  readonly os: string;
  readonly kernel: string;
  readonly arch: string;
  readonly cpuModel: string;
  readonly cpuSockets: number;
  readonly cpuCores: number;
  readonly memoryBytes: number;
}

/** PRETTY_NAME (else NAME VERSION) from an os-release file. */
export function parseOsRelease(text: string): string | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) fields.set(m[1] as string, (m[2] as string).replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1"));
  }
  return (
    fields.get("PRETTY_NAME") ?? ([fields.get("NAME"), fields.get("VERSION")].filter(Boolean).join(" ") || undefined)
  );
}

export interface CpuInfo {
  readonly model: string | undefined;
  readonly sockets: number;
  /** Physical cores over all sockets (logical processors when the file does not say). */
  readonly cores: number;
}

/** Model, sockets and physical cores from /proc/cpuinfo (x86 and arm64 layouts). */
export function parseCpuInfo(text: string): CpuInfo {
  let model: string | undefined;
  const sockets = new Set<string>();
  const cores = new Set<string>();
  let processors = 0;
  let physicalId = "0";
  for (const line of text.split("\n")) {
    const [rawKey, ...rest] = line.split(":");
    const key = rawKey?.trim() ?? "";
    const value = rest.join(":").trim();
    if (key === "processor") processors++;
    else if (key === "model name" || key === "Hardware" || key === "cpu model") model ??= value;
    else if (key === "physical id") {
      physicalId = value;
      sockets.add(value);
    } else if (key === "core id") cores.add(`${physicalId}/${value}`);
  }
  return {
    model,
    sockets: Math.max(1, sockets.size),
    cores: cores.size > 0 ? cores.size : processors,
  };
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The host's facts; anything unreadable falls back to what node:os knows. */
export async function gatherHostFacts(root = "/"): Promise<HostFacts> {
  const [osRelease, cpuinfo] = await Promise.all([
    readText(join(root, "etc/os-release")).then((t) => t ?? readText(join(root, "usr/lib/os-release"))),
    readText(join(root, "proc/cpuinfo")),
  ]);
  const cpus = os.cpus();
  const cpu = cpuinfo ? parseCpuInfo(cpuinfo) : undefined;
  return {
    hostname: os.hostname(),
    os: (osRelease && parseOsRelease(osRelease)) || `${os.type()} ${os.release()}`,
    kernel: os.release(),
    arch: os.arch(),
    cpuModel: cpu?.model ?? cpus[0]?.model ?? "unknown",
    cpuSockets: cpu?.sockets ?? 1,
    cpuCores: cpu?.cores ?? cpus.length,
    memoryBytes: os.totalmem(),
  };
}

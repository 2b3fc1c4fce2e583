// The runner's side of the probe host: forks it on first use, asks it for probe families, keeps
// the latest progress of each, and kills it on close. Killing the process is what bounds a hung
// NVML call (see probe-host.ts).
import { type ChildProcess, fork } from "node:child_process";
import { NvmlUnavailableError, ProbeFailedError, ProbeHostError } from "./errors.js";
import type { ProbeFamilies, ProbeFamily, ProbeParams, ProbeProgress } from "./facts.js";
import type { NvmlFactSource } from "./nvml-source.js";
import type { ProbeReply, ProbeRequest } from "./probe-protocol.js";

export interface ProbeHostOptions {
  /** NVML library for the probes; default: TESSERA_NVML_LIBRARY, then the system search. */
  readonly libraryPath?: string;
  /** Environment of the host process (default: this process's, read when it starts). */
  readonly env?: NodeJS.ProcessEnv;
}

interface Pending {
  readonly family: ProbeFamily;
  resolve(facts: unknown): void;
  reject(err: Error): void;
}

const FROM_SOURCE = import.meta.url.endsWith(".ts");
const HOST_URL = new URL(`./probe-host.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url);
/** Kept from the host's stderr for the error message when it dies. */
const STDERR_TAIL_CHARS = 2000;

/** NVML facts from a probe host process: hung calls cost a timeout, never the caller's thread. */
export function probeHostNvmlSource(options: ProbeHostOptions = {}): NvmlFactSource {
  let child: ChildProcess | undefined;
  let closed = false;
  let nextId = 1;
  let stderrTail = "";
  const pending = new Map<number, Pending>();
  const progress = new Map<ProbeFamily, ProbeProgress>();

  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };

  const start = (): ChildProcess => {
    if (child) return child;
    const c = fork(HOST_URL, [], {
      // From sources the host needs tsx too; compiled, it needs nothing of ours (no --inspect).
      execArgv: FROM_SOURCE ? ["--import", import.meta.resolve("tsx")] : [],
      env: options.env ?? process.env,
      serialization: "advanced",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    c.stderr?.setEncoding("utf8");
    c.stderr?.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    c.on("message", (reply: ProbeReply) => onReply(reply));
    c.on("error", (err) => failAll(new ProbeHostError(`probe host: ${err.message}`, { cause: err })));
    c.on("exit", (code, signal) => {
      child = undefined;
      if (closed) return;
      const why = signal ? `signal ${signal}` : `exit code ${code}`;
      const tail = stderrTail.trim();
      failAll(new ProbeHostError(`probe host ended (${why})${tail ? `: ${tail}` : ""}`));
    });
    // Waiting on probes keeps the caller alive through its own timers; the host must not.
    c.unref();
    c.channel?.unref();
    child = c;
    return c;
  };

  const onReply = (reply: ProbeReply) => {
    const p = pending.get(reply.id);
    if (!p) return;
    if (reply.type === "progress") {
      progress.set(p.family, { operation: reply.operation, gpu: reply.gpu, sinceMs: reply.sinceMs });
      return;
    }
    pending.delete(reply.id);
    progress.delete(p.family);
    if (reply.type === "result") p.resolve(reply.facts);
    else if (reply.phase === "open") p.reject(new NvmlUnavailableError(reply.error));
    else p.reject(new ProbeFailedError(p.family, reply.error));
  };

  return {
    probe<K extends ProbeFamily>(family: K, params: ProbeParams): Promise<ProbeFamilies[K]> {
      if (closed) return Promise.reject(new ProbeHostError("probe host is closed"));
      const id = nextId++;
      const result = new Promise<ProbeFamilies[K]>((resolve, reject) => {
        pending.set(id, { family, resolve: resolve as (facts: unknown) => void, reject });
      });
      // A caller that gave up (timed out) no longer listens; its rejection must not go unhandled.
      result.catch(() => undefined);
      const request: ProbeRequest = { type: "probe", id, family, params, libraryPath: options.libraryPath };
      start().send(request, (err) => {
        if (err) pending.get(id)?.reject(new ProbeHostError(`probe host: ${err.message}`, { cause: err }));
      });
      return result;
    },
    progress: (family) => progress.get(family),
    async close() {
      if (closed) return;
      closed = true;
      failAll(new ProbeHostError("probe host is closed"));
      const c = child;
      if (!c) return;
      // SIGKILL: a thread inside NVML cannot be asked to stop, and the host holds nothing to save.
      const gone = new Promise<void>((resolve) => c.once("exit", () => resolve()));
      c.ref(); // keep the loop alive until the exit is seen
      c.kill("SIGKILL");
      await gone;
    },
  };
}

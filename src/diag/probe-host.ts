// The probe host: a child process of the CLI or the agent that runs NVML probes, each family on
// its own worker thread. Why a process: a thread stuck in a native NVML call can be neither
// interrupted nor left behind (Node joins every worker thread before a process exits, even on
// process.exit()), so the only way to bound a hung call is to kill the process that made it.
import { Worker } from "node:worker_threads";
import type { ProbeEvent, ProbeReply, ProbeRequest, ProbeWorkerData } from "./probe-protocol.js";

const send = process.send?.bind(process);
if (send === undefined) throw new Error("probe-host.ts runs as a child process with an IPC channel");

/** Running from TypeScript sources (tsx): worker threads need tsx registered in them as well. */
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const WORKER_URL = new URL(`./probe-worker.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url);

function startWorker(data: ProbeWorkerData): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_URL, { workerData: data });
  // Node 20 does not carry --import hooks into worker threads; register tsx in the thread first.
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

function reply(message: ProbeReply): void {
  send?.(message);
}

process.on("message", (message: ProbeRequest) => {
  if (message?.type !== "probe") return;
  const { id, family, params, libraryPath } = message;
  let settled = false;
  const worker = startWorker({ family, params, libraryPath });
  worker.on("message", (event: ProbeEvent) => {
    if (event.type !== "progress") settled = true;
    reply({ ...event, id });
  });
  worker.on("error", (err) => {
    settled = true;
    reply({ type: "failed", id, phase: "probe", error: { message: err.message } });
  });
  worker.on("exit", (code) => {
    if (!settled) reply({ type: "failed", id, phase: "probe", error: { message: `probe thread exited (${code})` } });
  });
});

// The runner that started this host going away ends it too; not with process.exit(), which
// would wait for a thread stuck in NVML.
process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));

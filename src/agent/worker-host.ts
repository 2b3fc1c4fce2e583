// The main thread's side of an NVML worker: starts it (under tsx in development, plain JS in dist/),
// sends requests that time out instead of waiting forever on a hung NVML call, and hands every
// other message to the owner.
import { Worker } from "node:worker_threads";
import { type FromWorker, RemoteError, type ToWorker, WorkerGoneError, WorkerTimeoutError } from "./worker-protocol.js";

/**
 * A Worker for a module next to the caller. A `.ts` entry (tests, `npm run agent`) needs tsx's
 * loader inside the worker, which --import does not carry into workers on Node 20, so a small
 * bootstrap registers it first.
 */
export function startModuleWorker(url: URL, workerData: unknown): Worker {
  if (url.pathname.endsWith(".ts")) {
    const code = `import("tsx/esm/api").then((api) => { api.register(); return import(${JSON.stringify(url.href)}); })`;
    return new Worker(code, { eval: true, workerData, execArgv: [], resourceLimits: WORKER_LIMITS });
  }
  return new Worker(url, { workerData, resourceLimits: WORKER_LIMITS });
}

/**
 * The workers allocate little and briefly (one sweep at a time): a small young generation keeps
 * each thread's memory to a few MB instead of V8's default tens (reference: agent-overhead bench).
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

/** `./<name>.ts` next to `importMetaUrl` when running from source, `./<name>.js` when compiled. */
export function siblingModule(importMetaUrl: string, name: string): URL {
  const ext = importMetaUrl.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./${name}${ext}`, importMetaUrl);
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

export interface WorkerHostOptions {
  readonly name: string;
  readonly url: URL;
  readonly workerData: unknown;
  /** Every message that is not a response. */
  readonly onMessage: (message: Exclude<FromWorker, { kind: "response" }>) => void;
  /** The worker died (crash or exit) while it was meant to run. */
  readonly onExit: (why: string) => void;
}

export class WorkerHost {
  readonly name: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  readonly #options: WorkerHostOptions;
  #nextId = 1;
  #gone: string | undefined;
  #stopping = false;

  constructor(options: WorkerHostOptions) {
    this.name = options.name;
    this.#options = options;
    this.#worker = startModuleWorker(options.url, options.workerData);
    this.#worker.on("message", (m: FromWorker) => this.#onMessage(m));
    this.#worker.on("error", (err) => this.#fail(`crashed: ${err.message}`));
    this.#worker.on("exit", (code) => this.#fail(`exited with code ${code}`));
  }

  /** Whether the worker has not exited. */
  get alive(): boolean {
    return this.#gone === undefined;
  }

  /** Requests still waiting for an answer. */
  get inFlight(): number {
    return this.#pending.size;
  }

  request<T>(op: string, args: unknown, timeoutMs: number): Promise<T> {
    if (this.#gone !== undefined) return Promise.reject(new WorkerGoneError(this.name, this.#gone));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new WorkerTimeoutError(this.name, op, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, op });
      this.#post({ kind: "request", id, op, args });
    });
  }

  /** Asks the worker to stop (it shuts NVML down) and waits up to `timeoutMs`, then terminates it. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.#gone !== undefined) return;
    this.#stopping = true;
    const exited = new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
    this.#post({ kind: "stop" });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    const outcome = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    // A hung NVML call keeps the thread busy; terminate takes effect when it returns to JS.
    if (outcome === "timeout") await this.#worker.terminate();
  }

  #post(message: ToWorker): void {
    this.#worker.postMessage(message);
  }

  #onMessage(m: FromWorker): void {
    if (m.kind !== "response") {
      this.#options.onMessage(m);
      return;
    }
    const pending = this.#pending.get(m.id);
    if (!pending) return; // it timed out; its late outcome was logged by the worker
    this.#pending.delete(m.id);
    clearTimeout(pending.timer);
    if (m.ok) pending.resolve(m.value);
    else pending.reject(new RemoteError(m.error));
  }

  #fail(why: string): void {
    if (this.#gone !== undefined) return;
    this.#gone = why;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new WorkerGoneError(this.name, why));
      this.#pending.delete(id);
    }
    if (!this.#stopping) this.#options.onExit(why);
  }
}

// The worker side of worker-protocol.ts: answering requests and forwarding logs to the main thread's
// logger (one pino stream for the whole process).
import { parentPort } from "node:worker_threads";
import { type FromWorker, type LogLevel, serializeError, type ToWorker } from "./worker-protocol.js";

export type RequestHandler = (args: unknown) => unknown;

function port() {
  if (!parentPort) throw new Error("this module runs only as a worker thread");
  return parentPort;
}

export function post(message: FromWorker): void {
  port().postMessage(message);
}

export function log(level: LogLevel, fields: Record<string, unknown>, msg: string): void {
  post({ kind: "log", level, fields, msg });
}

/**
 * Answers requests with `handlers[op]`; `onStop` runs on the stop message, after which the worker
 * says "stopped" and ends. Requests run one at a time, in arrival order.
 */
export function serve(handlers: Record<string, RequestHandler>, onStop: () => Promise<void>): void {
  let queue: Promise<void> = Promise.resolve();
  port().on("message", (m: ToWorker) => {
    if (m.kind === "stop") {
      queue = queue.then(async () => {
        await onStop();
        post({ kind: "stopped" });
        port().close();
      });
      return;
    }
    queue = queue.then(async () => {
      const handler = handlers[m.op];
      try {
        if (!handler) throw new Error(`unknown worker request ${m.op}`);
        const value = await handler(m.args);
        post({ kind: "response", id: m.id, ok: true, value });
      } catch (err) {
        post({ kind: "response", id: m.id, ok: false, error: serializeError(err) });
      }
    });
  });
}

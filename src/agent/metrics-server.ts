// `/metrics` (and `/health`) over plain HTTP on their own port. Serving reads the latest snapshot
// and the agent's counters, never NVML; the snapshot part is rendered once per snapshot and lease
// change, however often Prometheus scrapes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { errorMessage } from "../errors.js";
import type { AgentMetrics } from "./agent-metrics.js";

export interface MetricsServerOptions {
  readonly metrics: AgentMetrics;
  /** The snapshot part of the page and a key that changes whenever it would. */
  readonly snapshotText: () => { key: string; render: () => string } | undefined;
  /** Undefined when healthy; else why not (stale sampler, not started). */
  readonly unhealthy: () => string | undefined;
  readonly onError: (err: unknown) => void;
}

export class MetricsServer {
  readonly #server: Server;
  readonly #o: MetricsServerOptions;
  #cacheKey = "";
  #cacheText = "";

  constructor(options: MetricsServerOptions) {
    this.#o = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.onError(err);
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`error: ${errorMessage(err)}\n`);
      });
    });
    this.#server.keepAliveTimeout = 65_000;
  }

  /** Listens on host:port (port 0 picks one); resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      const part = this.#o.snapshotText();
      if (part && part.key !== this.#cacheKey) {
        this.#cacheText = part.render();
        this.#cacheKey = part.key;
      }
      const own = await this.#o.metrics.registry.metrics();
      const body = `${part ? this.#cacheText : ""}${own}`;
      res.writeHead(200, { "content-type": this.#o.metrics.registry.contentType });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    if (path === "/health") {
      const why = this.#o.unhealthy();
      res.writeHead(why ? 503 : 200, { "content-type": "text/plain" });
      res.end(why ? `${why}\n` : "ok\n");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics or /health\n");
  }
}

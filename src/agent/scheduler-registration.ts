// The agent registers with the scheduler (config `scheduler`): RegisterNode at start with its node
// id and the address the scheduler reaches it at, then renewals at the interval the scheduler asks
// for (src/scheduler/registrar.ts). Without `scheduler.address` the agent registers nowhere; it is
// still fully usable directly (CLI, other clients).
import { hostname } from "node:os";
import { connectScheduler } from "../scheduler/client.js";
import { NodeRegistrar } from "../scheduler/registrar.js";
import { type AgentConfig, parseHostPort } from "./config.js";
import type { Logger } from "./logger.js";

/**
 * Where the scheduler reaches this agent: `scheduler.advertise`, else the TCP listener as bound
 * (a wildcard host becomes this host's name), else the local socket (a scheduler on this host).
 */
export function advertisedAddress(c: AgentConfig, boundTcp: string | undefined, socket: string | undefined): string {
  if (c.scheduler.advertise !== "") return c.scheduler.advertise;
  if (boundTcp !== undefined) {
    const hp = parseHostPort(boundTcp);
    if (hp && (hp.host === "0.0.0.0" || hp.host === "::")) return `${hostname()}:${hp.port}`;
    return boundTcp;
  }
  return `unix://${socket ?? c.listen.socket}`;
}

export interface SchedulerRegistration {
  stop(): Promise<void>;
}

/** Starts registering; undefined when no scheduler is configured. */
export async function startSchedulerRegistration(o: {
  readonly config: AgentConfig;
  readonly nodeId: string;
  readonly boundTcp: string | undefined;
  readonly socket: string | undefined;
  readonly log: Logger;
}): Promise<SchedulerRegistration | undefined> {
  const s = o.config.scheduler;
  if (s.address === "") return undefined;
  const client = await connectScheduler(
    {
      address: s.address,
      ca: s.tls.ca || undefined,
      cert: s.tls.cert || undefined,
      key: s.tls.key || undefined,
      insecure: s.insecure,
    },
    // grpc-js waits up to 120 s between reconnects by default; a restarted scheduler should hear
    // from us within seconds.
    { "grpc.initial_reconnect_backoff_ms": 250, "grpc.max_reconnect_backoff_ms": 2000 },
  );
  const address = advertisedAddress(o.config, o.boundTcp, o.socket);
  const registrar = new NodeRegistrar({
    client,
    nodeId: o.nodeId,
    address,
    leaseTtlMs: s.leaseTtlMs,
    log: o.log,
  });
  registrar.start();
  o.log.info({ scheduler: s.address, node: o.nodeId, address }, "registering with the scheduler");
  return {
    async stop() {
      await registrar.stop();
      client.close();
    },
  };
}

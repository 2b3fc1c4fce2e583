// The agent's side of RegisterNode: announce the node at start, then renew the registration lease
// at the interval the scheduler asks for. A failed call (the scheduler is down or restarting) is
// retried soon, with backoff, but never later than the next renewal would be: a restarted
// scheduler hears from every agent within one renewal interval, which is what its startup grace
// period counts on. Usually much sooner: when the connection to the scheduler drops (it was
// killed or restarted), the registrar starts retrying at once instead of waiting for the next
// renewal, so a restarted scheduler rebuilds its view about as fast as it starts.
// Used by tessera-agent and by benches that stand in for agents.
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { RegisterNodeRequestSchema } from "../gen/tessera/v1/scheduler_pb.js";
import { type SchedulerClient, schedulerCall } from "./client.js";

const MAX_RETRY_MS = 2000;

export interface RegistrarLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
}

export interface RegistrarOptions {
  readonly client: SchedulerClient;
  readonly nodeId: string;
  /** Where the scheduler reaches this agent. */
  readonly address: string;
  /** The lease asked for (0: the scheduler's default). */
  readonly leaseTtlMs: number;
  readonly log: RegistrarLog;
  /** Bound on each RegisterNode call. */
  readonly callTimeoutMs?: number;
  /** First retry after a failure; grows by half each time up to 2 s (or the renewal interval). */
  readonly retryMinMs?: number;
}

export interface RegistrationState {
  readonly registered: boolean;
  readonly leaseExpiresAtMs: number | null;
  readonly renewIntervalMs: number | null;
  readonly lastError: string | null;
  readonly registrations: number;
}

export class NodeRegistrar {
  readonly #o: RegistrarOptions;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failures = 0;
  #renewMs: number | null = null;
  #expiresAtMs: number | null = null;
  #lastError: string | null = null;
  #registrations = 0;
  #inFlight: Promise<void> | undefined;

  constructor(options: RegistrarOptions) {
    this.#o = options;
  }

  get state(): RegistrationState {
    return {
      registered: this.#expiresAtMs !== null && this.#expiresAtMs > Date.now(),
      leaseExpiresAtMs: this.#expiresAtMs,
      renewIntervalMs: this.#renewMs,
      lastError: this.#lastError,
      registrations: this.#registrations,
    };
  }

  start(): void {
    this.#schedule(0);
  }

  /** Stops renewing (the scheduler marks the node unavailable when the lease runs out). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#inFlight;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#inFlight = this.#register();
    }, ms);
    this.#timer.unref();
  }

  /** Until the next renewal: if the connection to the scheduler drops, register again now. */
  #watchConnection(untilMs: number): void {
    const channel = this.#o.client.getChannel();
    const ready = grpc.connectivityState.READY;
    if (channel.getConnectivityState(false) !== ready) return;
    channel.watchConnectivityState(ready, Date.now() + untilMs, (err) => {
      if (err || this.#stopped || channel.getConnectivityState(false) === ready) return;
      clearTimeout(this.#timer);
      this.#schedule(this.#o.retryMinMs ?? 250);
    });
  }

  async #register(): Promise<void> {
    const o = this.#o;
    try {
      const res = await schedulerCall(
        o.client,
        "registerNode",
        create(RegisterNodeRequestSchema, { nodeId: o.nodeId, address: o.address, leaseTtlMs: o.leaseTtlMs }),
        o.callTimeoutMs ?? 5000,
      );
      this.#registrations++;
      this.#renewMs = res.renewIntervalMs;
      this.#expiresAtMs = res.leaseExpiresAt ? timestampMs(res.leaseExpiresAt) : null;
      if (res.firstRegistration || this.#failures > 0)
        o.log.info(
          {
            scheduler: o.client.getChannel().getTarget(),
            node: o.nodeId,
            address: o.address,
            leaseTtlMs: res.leaseTtlMs,
          },
          this.#failures > 0 ? "registered with the scheduler again" : "registered with the scheduler",
        );
      this.#failures = 0;
      this.#lastError = null;
      this.#schedule(res.renewIntervalMs);
      this.#watchConnection(res.renewIntervalMs);
    } catch (err) {
      const e = err as grpc.ServiceError;
      this.#failures++;
      this.#lastError = e.details ?? e.message;
      // Soon and often enough to find a restarting scheduler quickly; never later than a renewal.
      const ceiling = Math.min(this.#renewMs ?? 5000, MAX_RETRY_MS);
      const retry = Math.round(Math.min(ceiling, (o.retryMinMs ?? 250) * 1.5 ** (this.#failures - 1)));
      const fields = { node: o.nodeId, attempt: this.#failures, retryInMs: retry, err: this.#lastError };
      if (this.#failures === 1) o.log.warn(fields, "cannot register with the scheduler; retrying");
      else o.log.debug(fields, "cannot register with the scheduler; retrying");
      this.#schedule(retry);
    }
  }
}

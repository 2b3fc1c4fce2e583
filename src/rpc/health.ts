// The standard gRPC health service (grpc.health.v1.Health: Check and Watch), so load balancers,
// grpc_health_probe and Kubernetes gRPC probes work. Its two messages are a string and an enum, so
// they are encoded here with protobuf-es's wire codec rather than by loading the proto at run time
// (grpc-health-check does that with protobufjs, which costs the agent megabytes of memory).
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";

export const HEALTH_SERVICE = "grpc.health.v1.Health";

/** HealthCheckResponse.ServingStatus */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatusName = keyof typeof ServingStatus;

export function encodeHealthRequest(service: string): Buffer {
  const w = new BinaryWriter();
  if (service !== "") w.tag(1, WireType.LengthDelimited).string(service);
  return Buffer.from(w.finish());
}

export function decodeHealthRequest(bytes: Uint8Array): string {
  const r = new BinaryReader(bytes);
  let service = "";
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 1 && type === WireType.LengthDelimited) service = r.string();
    else r.skip(type, field);
  }
  return service;
}

export function encodeHealthResponse(status: number): Buffer {
  const w = new BinaryWriter();
  if (status !== 0) w.tag(1, WireType.Varint).int32(status);
  return Buffer.from(w.finish());
}

export function decodeHealthResponse(bytes: Uint8Array): number {
  const r = new BinaryReader(bytes);
  let status = 0;
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 1 && type === WireType.Varint) status = r.int32();
    else r.skip(type, field);
  }
  return status;
}

const identity = (b: Buffer) => b;

/** The health service's grpc-js definition (requests and responses as raw bytes). */
export const healthDefinition: grpc.ServiceDefinition = {
  Check: {
    path: `/${HEALTH_SERVICE}/Check`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  Watch: {
    path: `/${HEALTH_SERVICE}/Watch`,
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** Serving status per service name ("" is the whole server); shared by every listener. */
export class HealthService {
  readonly #status = new Map<string, ServingStatusName>();
  readonly #watchers = new Map<string, Set<grpc.ServerWritableStream<Buffer, Buffer>>>();

  constructor(initial: Readonly<Record<string, ServingStatusName>>) {
    for (const [service, status] of Object.entries(initial)) this.#status.set(service, status);
  }

  setStatus(service: string, status: ServingStatusName): void {
    this.#status.set(service, status);
    for (const call of this.#watchers.get(service) ?? []) call.write(encodeHealthResponse(ServingStatus[status]));
  }

  /** Ends every Watch stream (shutdown), so that they do not hold the server open. */
  endWatches(): void {
    for (const set of this.#watchers.values()) for (const call of set) call.end();
    this.#watchers.clear();
  }

  addToServer(server: grpc.Server): void {
    server.addService(healthDefinition, {
      Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const service = decodeHealthRequest(call.request);
        const status = this.#status.get(service);
        if (status === undefined)
          callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${service}` }, null);
        else callback(null, encodeHealthResponse(ServingStatus[status]));
      },
      Watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const service = decodeHealthRequest(call.request);
        const status = this.#status.get(service);
        call.write(encodeHealthResponse(status === undefined ? ServingStatus.SERVICE_UNKNOWN : ServingStatus[status]));
        const set = this.#watchers.get(service) ?? new Set();
        set.add(call);
        this.#watchers.set(service, set);
        const remove = () => set.delete(call);
        call.on("cancelled", remove);
        call.on("close", remove);
        call.on("error", remove);
      },
    });
  }
}

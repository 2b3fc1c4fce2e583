// A typed SchedulerService client for the CLI, agents (RegisterNode), tests and benches:
// `unix:///run/tessera/scheduler.sock` (local socket) or `host:port` with mTLS (or plaintext to a
// development scheduler on loopback).
import type { MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { SchedulerService } from "../gen/tessera/v1/scheduler_pb.js";
import { type AgentConnection, agentCredentials } from "../rpc/client.js";
import { clientConstructor, type ServiceClient } from "../rpc/grpc-adapter.js";

export type SchedulerClient = ServiceClient<(typeof SchedulerService)["method"]>;

/** Where the scheduler is and how to authenticate: the same shape as an agent connection. */
export type SchedulerConnection = AgentConnection;

const ClientCtor = clientConstructor(SchedulerService);

export function createSchedulerClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): SchedulerClient {
  return new ClientCtor(address, credentials, {
    "grpc.max_receive_message_length": 64 << 20,
    ...options,
  }) as unknown as SchedulerClient;
}

export async function connectScheduler(
  c: SchedulerConnection,
  options: grpc.ClientOptions = {},
): Promise<SchedulerClient> {
  return createSchedulerClient(c.address, await agentCredentials(c), options);
}

type Methods = (typeof SchedulerService)["method"];
export type SchedulerUnaryMethod = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary" ? K : never;
}[keyof Methods];
type Input<K extends keyof Methods> = MessageShape<Methods[K]["input"]>;
type Output<K extends keyof Methods> = MessageShape<Methods[K]["output"]>;

/** Calls a unary method with a deadline; rejects with the grpc-js ServiceError. */
export function schedulerCall<K extends SchedulerUnaryMethod>(
  client: SchedulerClient,
  method: K,
  request: Input<K>,
  timeoutMs = 30_000,
): Promise<Output<K>> {
  const fn = client[method] as unknown as (
    request: Input<K>,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, response: Output<K>) => void,
  ) => grpc.ClientUnaryCall;
  return new Promise((resolve, reject) => {
    fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

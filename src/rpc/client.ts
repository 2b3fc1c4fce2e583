// A typed NodeAgent client for the CLI, the scheduler and tests: `unix:///run/tessera/agent.sock`
// (local socket, no TLS) or `host:port` with mTLS (or plaintext to a development agent).
import { readFile } from "node:fs/promises";
import type { MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { errorMessage, InputError } from "../errors.js";
import { NodeAgentService } from "../gen/tessera/v1/agent_pb.js";
import { clientConstructor, type ServiceClient } from "./grpc-adapter.js";

export type NodeAgentClient = ServiceClient<(typeof NodeAgentService)["method"]>;

export interface AgentConnection {
  /** `unix:///path/agent.sock` or `host:port`. */
  readonly address: string;
  /** CA that signed the agent's certificate (PEM file). */
  readonly ca?: string | undefined;
  /** This client's certificate and key (PEM files). */
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  /** Plaintext TCP: only a development agent (--dev-insecure, loopback) accepts it. */
  readonly insecure?: boolean | undefined;
}

const ClientCtor = clientConstructor(NodeAgentService);

async function pem(what: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new InputError(`cannot read ${what}: ${errorMessage(err)}`, { file: path });
  }
}

export async function agentCredentials(c: AgentConnection): Promise<grpc.ChannelCredentials> {
  if (c.address.startsWith("unix:") || c.insecure) return grpc.credentials.createInsecure();
  if (!c.ca || !c.cert || !c.key)
    throw new InputError(
      `${c.address}: TCP needs mTLS: pass --ca, --cert and --key (or --insecure for a development agent on loopback)`,
    );
  const [ca, cert, key] = await Promise.all([pem("--ca", c.ca), pem("--cert", c.cert), pem("--key", c.key)]);
  return grpc.credentials.createSsl(ca, key, cert);
}

export function createAgentClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): NodeAgentClient {
  return new ClientCtor(address, credentials, options) as unknown as NodeAgentClient;
}

export async function connectAgent(c: AgentConnection, options: grpc.ClientOptions = {}): Promise<NodeAgentClient> {
  return createAgentClient(c.address, await agentCredentials(c), options);
}

type Methods = (typeof NodeAgentService)["method"];
export type UnaryMethodName = {
  [K in keyof Methods]: Methods[K]["methodKind"] extends "unary" ? K : never;
}[keyof Methods];
type Input<K extends keyof Methods> = MessageShape<Methods[K]["input"]>;
type Output<K extends keyof Methods> = MessageShape<Methods[K]["output"]>;

/** Calls a unary method with a deadline; rejects with the grpc-js ServiceError. */
export function call<K extends UnaryMethodName>(
  client: NodeAgentClient,
  method: K,
  request: Input<K>,
  timeoutMs = 10_000,
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

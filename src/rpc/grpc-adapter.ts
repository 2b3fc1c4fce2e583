// protobuf-es (v2) messages over @grpc/grpc-js: there is no maintained adapter on npm
// (reference/stack.md §2), so this builds grpc-js service definitions, typed handler maps and
// typed client constructors from the generated GenService descriptors.
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";

type In<M> = M extends { input: infer I extends DescMessage } ? MessageShape<I> : never;
type Out<M> = M extends { output: infer O extends DescMessage } ? MessageShape<O> : never;

/** Handlers for every method of a service, typed from its descriptor. */
export type ServiceImpl<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]["methodKind"] extends "unary"
    ? grpc.handleUnaryCall<In<T[K]>, Out<T[K]>>
    : T[K]["methodKind"] extends "server_streaming"
      ? grpc.handleServerStreamingCall<In<T[K]>, Out<T[K]>>
      : T[K]["methodKind"] extends "client_streaming"
        ? grpc.handleClientStreamingCall<In<T[K]>, Out<T[K]>>
        : grpc.handleBidiStreamingCall<In<T[K]>, Out<T[K]>>;
};

type UnaryMethod<I, O> = {
  (request: I, callback: (err: grpc.ServiceError | null, response: O) => void): grpc.ClientUnaryCall;
  (
    request: I,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, response: O) => void,
  ): grpc.ClientUnaryCall;
  (
    request: I,
    options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, response: O) => void,
  ): grpc.ClientUnaryCall;
};
type ServerStreamMethod<I, O> = (request: I, options?: Partial<grpc.CallOptions>) => grpc.ClientReadableStream<O>;

/** A grpc-js client of a service, typed from its descriptor (unary and server-streaming methods). */
export type ServiceClient<T extends GenServiceMethods> = grpc.Client & {
  [K in keyof T]: T[K]["methodKind"] extends "unary"
    ? UnaryMethod<In<T[K]>, Out<T[K]>>
    : T[K]["methodKind"] extends "server_streaming"
      ? ServerStreamMethod<In<T[K]>, Out<T[K]>>
      : never;
};

/**
 * A response that is already encoded: fan-out encodes a message once and writes the same bytes
 * to every stream (see watch-hub.ts). Concatenated encodings of one message type parse as their
 * merge, which is how a per-stream field is added to shared bytes.
 */
export class Encoded {
  constructor(readonly bytes: Buffer) {}
}

function serializer(schema: DescMessage): (value: unknown) => Buffer {
  return (value) => {
    if (value instanceof Encoded) return value.bytes;
    const b = toBinary(schema, value as MessageShape<DescMessage>);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };
}

function deserializer(schema: DescMessage): (bytes: Buffer) => unknown {
  return (bytes) => fromBinary(schema, bytes);
}

/** Encodes a message to the bytes the serializer would send. */
export function encodeMessage<D extends DescMessage>(schema: D, message: MessageShape<D>): Buffer {
  const b = toBinary(schema, message);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function serviceDefinition<T extends GenServiceMethods>(
  service: GenService<T>,
): grpc.ServiceDefinition<ServiceImpl<T>> {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      originalName: m.name,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
    };
  }
  return def as grpc.ServiceDefinition<ServiceImpl<T>>;
}

/** grpc.Server#addService takes untyped handlers; this keeps them typed. */
export function addService<T extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<T>,
  impl: ServiceImpl<T>,
): void {
  server.addService(
    serviceDefinition(service) as grpc.ServiceDefinition,
    impl as unknown as grpc.UntypedServiceImplementation,
  );
}

export type ServiceClientConstructor<T extends GenServiceMethods> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => ServiceClient<T>;

export function clientConstructor<T extends GenServiceMethods>(service: GenService<T>): ServiceClientConstructor<T> {
  return grpc.makeGenericClientConstructor(
    serviceDefinition(service) as grpc.ServiceDefinition,
    service.name,
  ) as unknown as ServiceClientConstructor<T>;
}

/** `/tessera.v1.NodeAgentService/GetNode` paths of a service, by method local name. */
export function methodPaths<T extends GenServiceMethods>(service: GenService<T>): Record<keyof T, string> {
  const out: Record<string, string> = {};
  for (const m of service.methods) out[m.localName] = `/${service.typeName}/${m.name}`;
  return out as Record<keyof T, string>;
}

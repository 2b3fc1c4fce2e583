// gRPC server reflection (grpc.reflection.v1 and v1alpha, same wire format), so grpcurl, grpcui and
// Postman can list and call the agent's services without its protos. The descriptors come from the
// generated code (protobuf-es embeds each file's FileDescriptorProto); the reflection messages are
// encoded here with protobuf-es's wire codec (@grpc/reflection would load its protos with
// protobufjs at run time, at a cost of megabytes of memory).
import { createRegistry, type DescFile, type Registry, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";

export const REFLECTION_SERVICES = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

export type ReflectionRequest =
  | { readonly kind: "fileByFilename"; readonly name: string }
  | { readonly kind: "fileContainingSymbol"; readonly symbol: string }
  | { readonly kind: "fileContainingExtension"; readonly type: string; readonly number: number }
  | { readonly kind: "allExtensionNumbersOfType"; readonly type: string }
  | { readonly kind: "listServices" }
  | { readonly kind: "unknown" };

export type ReflectionResponse =
  | { readonly kind: "fileDescriptors"; readonly files: readonly Uint8Array[] }
  | { readonly kind: "extensionNumbers"; readonly type: string; readonly numbers: readonly number[] }
  | { readonly kind: "services"; readonly names: readonly string[] }
  | { readonly kind: "error"; readonly code: number; readonly message: string };

const LD = WireType.LengthDelimited;

export function decodeReflectionRequest(bytes: Uint8Array): {
  host: string;
  raw: Uint8Array;
  request: ReflectionRequest;
} {
  const r = new BinaryReader(bytes);
  let host = "";
  let request: ReflectionRequest = { kind: "unknown" };
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (type !== LD) {
      r.skip(type, field);
      continue;
    }
    switch (field) {
      case 1:
        host = r.string();
        break;
      case 3:
        request = { kind: "fileByFilename", name: r.string() };
        break;
      case 4:
        request = { kind: "fileContainingSymbol", symbol: r.string() };
        break;
      case 5: {
        const ext = new BinaryReader(r.bytes());
        let typeName = "";
        let number = 0;
        while (ext.pos < ext.len) {
          const [f, t] = ext.tag();
          if (f === 1 && t === LD) typeName = ext.string();
          else if (f === 2 && t === WireType.Varint) number = ext.int32();
          else ext.skip(t, f);
        }
        request = { kind: "fileContainingExtension", type: typeName, number };
        break;
      }
      case 6:
        request = { kind: "allExtensionNumbersOfType", type: r.string() };
        break;
      case 7:
        r.string();
        request = { kind: "listServices" };
        break;
      default:
        r.skip(type, field);
    }
  }
  return { host, raw: bytes, request };
}

export function encodeReflectionRequest(request: ReflectionRequest): Buffer {
  const w = new BinaryWriter();
  switch (request.kind) {
    case "fileByFilename":
      w.tag(3, LD).string(request.name);
      break;
    case "fileContainingSymbol":
      w.tag(4, LD).string(request.symbol);
      break;
    case "fileContainingExtension":
      w.tag(5, LD).fork().tag(1, LD).string(request.type).tag(2, WireType.Varint).int32(request.number).join();
      break;
    case "allExtensionNumbersOfType":
      w.tag(6, LD).string(request.type);
      break;
    case "listServices":
      w.tag(7, LD).string("*");
      break;
    case "unknown":
      break;
  }
  return Buffer.from(w.finish());
}

export function encodeReflectionResponse(host: string, original: Uint8Array, response: ReflectionResponse): Buffer {
  const w = new BinaryWriter();
  if (host !== "") w.tag(1, LD).string(host);
  w.tag(2, LD).bytes(original);
  switch (response.kind) {
    case "fileDescriptors":
      w.tag(4, LD).fork();
      for (const f of response.files) w.tag(1, LD).bytes(f);
      w.join();
      break;
    case "extensionNumbers":
      w.tag(5, LD).fork().tag(1, LD).string(response.type);
      for (const n of response.numbers) w.tag(2, WireType.Varint).int32(n);
      w.join();
      break;
    case "services":
      w.tag(6, LD).fork();
      for (const name of response.names) w.tag(1, LD).fork().tag(1, LD).string(name).join();
      w.join();
      break;
    case "error":
      w.tag(7, LD).fork().tag(1, WireType.Varint).int32(response.code).tag(2, LD).string(response.message).join();
      break;
  }
  return Buffer.from(w.finish());
}

/** Decodes a response (for clients and tests). */
export function decodeReflectionResponse(bytes: Uint8Array): ReflectionResponse {
  const r = new BinaryReader(bytes);
  let out: ReflectionResponse = { kind: "error", code: grpc.status.INTERNAL, message: "empty response" };
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (type !== LD || field < 4 || field > 7) {
      r.skip(type, field);
      continue;
    }
    const inner = new BinaryReader(r.bytes());
    const files: Uint8Array[] = [];
    const names: string[] = [];
    const numbers: number[] = [];
    let text = "";
    let code = 0;
    while (inner.pos < inner.len) {
      const [f, t] = inner.tag();
      if (field === 4 && f === 1 && t === LD) files.push(inner.bytes());
      else if (field === 6 && f === 1 && t === LD) {
        const svc = new BinaryReader(inner.bytes());
        while (svc.pos < svc.len) {
          const [sf, st] = svc.tag();
          if (sf === 1 && st === LD) names.push(svc.string());
          else svc.skip(st, sf);
        }
      } else if (field === 5 && f === 1 && t === LD) text = inner.string();
      else if (field === 5 && f === 2 && t === WireType.Varint) numbers.push(inner.int32());
      else if (field === 7 && f === 1 && t === WireType.Varint) code = inner.int32();
      else if (field === 7 && f === 2 && t === LD) text = inner.string();
      else inner.skip(t, f);
    }
    out =
      field === 4
        ? { kind: "fileDescriptors", files }
        : field === 5
          ? { kind: "extensionNumbers", type: text, numbers }
          : field === 6
            ? { kind: "services", names }
            : { kind: "error", code, message: text };
  }
  return out;
}

/** Answers reflection requests about `files` (and everything they import). */
export class Reflection {
  readonly #registry: Registry;
  readonly #files = new Map<string, DescFile>();
  readonly #encoded = new Map<string, Uint8Array>();
  readonly #services: readonly string[];

  constructor(files: readonly DescFile[], extraServices: readonly string[]) {
    const visit = (f: DescFile) => {
      if (this.#files.has(f.name)) return;
      this.#files.set(f.name, f);
      for (const d of f.dependencies) visit(d);
    };
    for (const f of files) visit(f);
    this.#registry = createRegistry(...this.#files.values());
    this.#services = [...files.flatMap((f) => f.services.map((s) => s.typeName)), ...extraServices];
  }

  answer(request: ReflectionRequest): ReflectionResponse {
    switch (request.kind) {
      case "listServices":
        return { kind: "services", names: this.#services };
      case "fileByFilename": {
        const file = this.#files.get(request.name.replace(/\.proto$/, ""));
        return file ? this.#withDeps(file) : notFound(`file ${request.name}`);
      }
      case "fileContainingSymbol": {
        const file = this.#fileOfSymbol(request.symbol);
        return file ? this.#withDeps(file) : notFound(`symbol ${request.symbol}`);
      }
      case "allExtensionNumbersOfType":
        return this.#registry.getMessage(request.type)
          ? { kind: "extensionNumbers", type: request.type, numbers: [] }
          : notFound(`type ${request.type}`);
      case "fileContainingExtension":
        return notFound(`extension ${request.number} of ${request.type}`);
      case "unknown":
        return { kind: "error", code: grpc.status.UNIMPLEMENTED, message: "unsupported reflection request" };
    }
  }

  #fileOfSymbol(symbol: string): DescFile | undefined {
    const direct = this.#registry.get(symbol);
    if (direct) return "file" in direct ? direct.file : undefined;
    // Methods (Service.Method) and enum values (pkg.Enum.VALUE) belong to their parent's file.
    const parent = this.#registry.get(symbol.slice(0, symbol.lastIndexOf(".")));
    return parent && "file" in parent ? parent.file : undefined;
  }

  #withDeps(file: DescFile): ReflectionResponse {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const add = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      out.push(this.#bytes(f));
      for (const d of f.dependencies) add(d);
    };
    add(file);
    return { kind: "fileDescriptors", files: out };
  }

  #bytes(f: DescFile): Uint8Array {
    let b = this.#encoded.get(f.name);
    if (!b) {
      b = toBinary(FileDescriptorProtoSchema, f.proto);
      this.#encoded.set(f.name, b);
    }
    return b;
  }

  addToServer(server: grpc.Server): void {
    const identity = (b: Buffer) => b;
    for (const service of REFLECTION_SERVICES) {
      server.addService(
        {
          ServerReflectionInfo: {
            path: `/${service}/ServerReflectionInfo`,
            requestStream: true,
            responseStream: true,
            requestSerialize: identity,
            requestDeserialize: identity,
            responseSerialize: identity,
            responseDeserialize: identity,
          },
        },
        {
          ServerReflectionInfo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
            call.on("data", (bytes: Buffer) => {
              let reply: Buffer;
              try {
                const { host, raw, request } = decodeReflectionRequest(bytes);
                reply = encodeReflectionResponse(host, raw, this.answer(request));
              } catch {
                reply = encodeReflectionResponse("", new Uint8Array(), {
                  kind: "error",
                  code: grpc.status.INVALID_ARGUMENT,
                  message: "malformed reflection request",
                });
              }
              call.write(reply);
            });
            call.on("end", () => call.end());
            call.on("error", () => undefined);
          },
        },
      );
    }
  }
}

function notFound(what: string): ReflectionResponse {
  return { kind: "error", code: grpc.status.NOT_FOUND, message: `${what} not found` };
}

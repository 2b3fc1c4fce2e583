import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { file_tessera_v1_agent } from "../../src/gen/tessera/v1/agent_pb.js";
import {
  decodeHealthRequest,
  decodeHealthResponse,
  encodeHealthRequest,
  encodeHealthResponse,
} from "../../src/rpc/health.js";
import {
  decodeReflectionRequest,
  decodeReflectionResponse,
  encodeReflectionRequest,
  encodeReflectionResponse,
  Reflection,
  type ReflectionRequest,
} from "../../src/rpc/reflection.js";

const reflection = new Reflection([file_tessera_v1_agent], ["grpc.health.v1.Health"]);

function ask(request: ReflectionRequest) {
  // Through the wire format both ways, as a client would.
  const { host, raw, request: decoded } = decodeReflectionRequest(encodeReflectionRequest(request));
  return decodeReflectionResponse(encodeReflectionResponse(host, raw, reflection.answer(decoded)));
}

function fileNames(r: ReturnType<typeof ask>): string[] {
  assert.equal(r.kind, "fileDescriptors", JSON.stringify(r));
  return r.kind === "fileDescriptors" ? r.files.map((f) => fromBinary(FileDescriptorProtoSchema, f).name) : [];
}

describe("server reflection", () => {
  it("lists the agent's services", () => {
    const r = ask({ kind: "listServices" });
    assert.deepEqual(r.kind === "services" ? r.names : [], ["tessera.v1.NodeAgentService", "grpc.health.v1.Health"]);
  });

  it("finds the file of a service, a method, a message and an enum value, with its imports", () => {
    for (const symbol of [
      "tessera.v1.NodeAgentService",
      "tessera.v1.NodeAgentService.Allocate",
      "tessera.v1.AllocateRequest",
      "tessera.v1.ApplyOutcome",
    ])
      assert.equal(fileNames(ask({ kind: "fileContainingSymbol", symbol }))[0], "tessera/v1/agent.proto", symbol);
    const names = fileNames(ask({ kind: "fileByFilename", name: "tessera/v1/node.proto" }));
    assert.deepEqual(names, ["tessera/v1/node.proto", "google/protobuf/timestamp.proto"]);
  });

  it("answers NOT_FOUND for what it does not know, and no extensions for known messages", () => {
    const missing = ask({ kind: "fileContainingSymbol", symbol: "nope.Nothing" });
    assert.deepEqual(missing.kind === "error" ? [missing.code, missing.message] : [], [
      5,
      "symbol nope.Nothing not found",
    ]);
    const ext = ask({ kind: "allExtensionNumbersOfType", type: "tessera.v1.Node" });
    assert.deepEqual(ext, { kind: "extensionNumbers", type: "tessera.v1.Node", numbers: [] });
  });
});

describe("health codec", () => {
  it("round-trips requests and statuses", () => {
    assert.equal(
      decodeHealthRequest(encodeHealthRequest("tessera.v1.NodeAgentService")),
      "tessera.v1.NodeAgentService",
    );
    assert.equal(decodeHealthRequest(encodeHealthRequest("")), "");
    for (const s of [0, 1, 2, 3]) assert.equal(decodeHealthResponse(encodeHealthResponse(s)), s);
  });
});

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import {
  defaultAgentConfig,
  finishConfig,
  isLoopbackHost,
  loadAgentConfig,
  parseAgentConfig,
  parseHostPort,
  printConfig,
} from "../../src/agent/config.js";
import { runAgent } from "../../src/agent/run.js";
import { InputError } from "../../src/errors.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "tessera-config-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    return err;
  }
  assert.fail("expected an InputError");
}

describe("agent config", () => {
  it("has a default for every setting", () => {
    const c = defaultAgentConfig();
    assert.equal(c.sampling.intervalMs, 1000);
    assert.equal(c.listen.socket, "/run/tessera/agent.sock");
    assert.equal(c.listen.socketMode, "0660");
    assert.equal(c.listen.socketGroup, "tessera");
    assert.equal(c.listen.tcp, "");
    assert.equal(c.metrics.hostnameLabel, "Hostname");
    assert.equal(c.auth.socketRole, "admin");
    assert.deepEqual(parseAgentConfig("", "empty.yaml"), c);
  });

  const invalid: [string, string, number, number, RegExp][] = [
    ["an unknown top-level key", "samplng:\n  intervalMs: 500\n", 1, 1, /samplng: unknown setting/],
    ["an unknown nested key", "sampling:\n  intervalMs: 500\n  jitter: 3\n", 3, 3, /sampling\.jitter: unknown setting/],
    ["a value of the wrong type", "mig:\n  dynamic: yes please\n", 2, 12, /mig\.dynamic: /],
    ["an interval under 100 ms", "sampling:\n  intervalMs: 10\n", 2, 15, /sampling\.intervalMs: .*>=100/],
    ["an unknown role", "auth:\n  rules:\n    - { cn: a, role: root }\n", 3, 22, /auth\.rules\[0\]\.role/],
    [
      "a rule naming two identities",
      "auth:\n  rules:\n    - { cn: a, uri: b, role: admin }\n",
      3,
      7,
      /exactly one of cn, dns or uri/,
    ],
    ["a bad listen address", "listen:\n  tcp: 7443\n", 2, 8, /listen\.tcp/],
    ["broken YAML", "listen: [\n", 2, 1, /YAML/],
    ["a duplicate key", "log:\n  level: info\n  level: debug\n", 3, 3, /YAML/],
  ];
  for (const [what, text, line, column, message] of invalid) {
    it(`rejects ${what} with file, line and column`, () => {
      const err = inputError(() => parseAgentConfig(text, "/etc/tessera/agent.yaml"));
      assert.equal(err.file, "/etc/tessera/agent.yaml");
      assert.equal(err.line, line, err.message);
      assert.equal(err.column, column, err.message);
      assert.match(err.message, message);
      assert.ok(err.message.startsWith(`/etc/tessera/agent.yaml:${line}:${column}: `), err.message);
    });
  }

  it("reads the default path only when it exists, and any named path must", async () => {
    const named = join(dir, "agent.yaml");
    writeFileSync(named, "sampling:\n  intervalMs: 250\n");
    assert.equal((await loadAgentConfig(named)).config.sampling.intervalMs, 250);
    await assert.rejects(loadAgentConfig(join(dir, "nope.yaml")), /cannot read the agent config/);
  });

  it("lets flags override the file and checks what only works together", () => {
    const c = finishConfig(defaultAgentConfig(), {
      listenTcp: "127.0.0.1:7443",
      devInsecure: true,
      samplingIntervalMs: 500,
    });
    assert.equal(c.listen.tcp, "127.0.0.1:7443");
    assert.equal(c.sampling.intervalMs, 500);
    assert.match(
      inputError(() => finishConfig(defaultAgentConfig(), { listenTcp: "0.0.0.0:7443", devInsecure: true })).message,
      /loopback/,
    );
    assert.match(
      inputError(() => finishConfig(defaultAgentConfig(), { listenTcp: "10.0.0.1:7443" })).message,
      /needs mTLS/,
    );
    assert.match(
      inputError(() => finishConfig(defaultAgentConfig(), { devInsecure: true })).message,
      /needs listen\.tcp/,
    );
    assert.match(inputError(() => finishConfig(defaultAgentConfig(), { socket: "" })).message, /nothing to listen on/);
    assert.match(
      inputError(() => finishConfig(defaultAgentConfig(), { samplingIntervalMs: 5 })).message,
      /sampling\.intervalMs/,
    );
  });

  it("parses host:port and knows loopback", () => {
    assert.deepEqual(parseHostPort("[::1]:7443"), { host: "::1", port: 7443 });
    assert.deepEqual(parseHostPort("localhost:0"), { host: "localhost", port: 0 });
    assert.equal(parseHostPort("host:99999"), undefined);
    assert.equal(parseHostPort("nohost"), undefined);
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ["0.0.0.0", "10.1.1.1", "::", "example.com"]) assert.equal(isLoopbackHost(h), false, h);
  });

  it("prints the effective config with --print-config", async () => {
    const file = join(dir, "print.yaml");
    writeFileSync(file, "mig:\n  dynamic: true\n");
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    // The runner's own reports to its parent are binary: pass those through.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      if (typeof chunk !== "string") return write(chunk, ...rest);
      out.push(chunk);
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await runAgent(["--config", file, "--print-config", "--listen", "127.0.0.1:7443", "--dev-insecure"]);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(code, 0);
    const printed = parse(out.join("")) as ReturnType<typeof defaultAgentConfig>;
    assert.equal(printed.mig.dynamic, true);
    assert.equal(printed.listen.tcp, "127.0.0.1:7443");
    assert.equal(printed.sampling.intervalMs, 1000);
    assert.equal(printConfig(printed), out.join(""));
  });
});

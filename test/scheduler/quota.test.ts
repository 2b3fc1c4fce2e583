import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InputError } from "../../src/errors.js";
import { checkQuota, parseQuotaConfig, QuotaExceededError } from "../../src/scheduler/quota.js";
import { H100_80GB } from "../mig/geometries.js";
import { dynamicNode, engineFor, profileRequest, world } from "./helpers.js";

describe("quota config", () => {
  it("reads defaults and per-tenant limits; a missing limit is unlimited", () => {
    const q = parseQuotaConfig({ defaults: { computeSlices: 7 }, tenants: { research: { memorySlices: 16 } } });
    assert.deepEqual(q.defaults, { computeSlices: 7, memorySlices: null });
    assert.deepEqual(q.tenants.get("research"), { computeSlices: null, memorySlices: 16 });
  });

  const bad: [string, unknown, RegExp][] = [
    ["an unknown field", { tenants: { a: { gpus: 1 } } }, /^cfg\.yaml: quotas\.tenants\.a\.gpus: unknown field/],
    ["a negative limit", { defaults: { computeSlices: -1 } }, /^cfg\.yaml: quotas\.defaults\.computeSlices: /],
    ["a fractional limit", { tenants: { a: { memorySlices: 1.5 } } }, /quotas\.tenants\.a\.memorySlices/],
  ];
  for (const [name, raw, message] of bad) {
    it(`rejects ${name}, naming the field`, () => {
      assert.throws(
        () => parseQuotaConfig(raw, "cfg.yaml"),
        (err: unknown) => err instanceof InputError && message.test(err.message),
      );
    });
  }
});

describe("quota check", () => {
  const config = parseQuotaConfig({ tenants: { a: { computeSlices: 7, memorySlices: 8 } } });

  it("lets a request up to the limit through", () => {
    checkQuota(config, "a", { computeSlices: 4, memorySlices: 4 }, { computeSlices: 3, memorySlices: 4 });
  });

  it("names the tenant, the quota, the usage and the request when over", () => {
    assert.throws(
      () => checkQuota(config, "a", { computeSlices: 4, memorySlices: 4 }, { computeSlices: 1, memorySlices: 5 }),
      (err: unknown) => {
        assert.ok(err instanceof QuotaExceededError);
        assert.equal(err.code, "TESSERA_QUOTA_EXCEEDED");
        assert.equal(err.quota, "memorySlices");
        assert.equal(
          err.message,
          "tenant a: quota memorySlices is 8 memory slices; 4 in use (leases and reservations) + 5 requested = 9",
        );
        return true;
      },
    );
  });

  it("leaves unnamed tenants to the defaults (here unlimited)", () => {
    checkQuota(config, "b", { computeSlices: 700, memorySlices: 800 }, { computeSlices: 7, memorySlices: 8 });
  });
});

describe("quotas in placement", () => {
  it("refuses the request that would pass a tenant's compute slices, and only that tenant's", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    const engine = engineFor(w, parseQuotaConfig({ tenants: { a: { computeSlices: 7 } } }));
    await engine.place(profileRequest("4g.40gb", { tenant: "a" }));
    await engine.place(profileRequest("3g.40gb", { tenant: "a" }));
    await assert.rejects(engine.place(profileRequest("1g.10gb", { tenant: "a" })), (err: unknown) => {
      assert.ok(err instanceof QuotaExceededError);
      assert.match(err.message, /^tenant a: quota computeSlices is 7 compute slices; 7 in use/);
      return true;
    });
    await engine.place(profileRequest("1g.10gb", { tenant: "b" }));
    assert.equal(w.fleet.allLeases().length, 3);
  });

  it("counts memory slices by profile: a 1g.20gb takes two", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w, parseQuotaConfig({ defaults: { memorySlices: 3 } }));
    await engine.place(profileRequest("1g.20gb"));
    await assert.rejects(engine.place(profileRequest("1g.20gb")), QuotaExceededError);
    await engine.place(profileRequest("1g.10gb"));
  });

  it("counts reservations the agents have not confirmed, so concurrent requests cannot both slip under", async () => {
    const w = world([dynamicNode("n1", H100_80GB, 2)]);
    const engine = engineFor(w, parseQuotaConfig({ defaults: { computeSlices: 4 } }));
    let open: () => void = () => {};
    const gate = new Promise<void>((r) => {
      open = r;
    });
    w.fleet.hooks.beforeAllocate = () => gate;
    const a = engine.place(profileRequest("3g.40gb"));
    const b = engine.place(profileRequest("3g.40gb"));
    open();
    const [ra, rb] = await Promise.allSettled([a, b]);
    assert.equal(ra.status, "fulfilled");
    assert.ok(rb.status === "rejected" && rb.reason instanceof QuotaExceededError);
  });

  it("gives quota back on release", async () => {
    const w = world([dynamicNode("n1", H100_80GB)]);
    const engine = engineFor(w, parseQuotaConfig({ defaults: { computeSlices: 7 } }));
    await engine.place(profileRequest("7g.80gb", { workloadId: "big" }));
    await engine.release("big");
    await engine.place(profileRequest("7g.80gb", { workloadId: "big2" }));
  });
});

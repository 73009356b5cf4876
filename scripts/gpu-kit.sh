#!/usr/bin/env bash
# The WebGPU measurement owed on a real GPU (issue 5), as one prepared run for a lent GPU machine (the
# `device` tool: ~15 minutes of device time per session, one command <= 600 s). That machine has an NVIDIA
# driver, Python with JAX, and no Node, npm or Vulkan loader, and fetches nothing; so the kit travels
# with the working tree:
#
#   here:   bash scripts/gpu-kit.sh pack    # writes .gpukit/ (git-ignored, ~45 MB): Node, the node_modules
#                                           # the tests and benches need, Debian's libvulkan1, the JAX anchor
#   there:  bash scripts/gpu-kit.sh run     # device run, carry [".gpukit"], timeout_s 600: unpacks, then
#                                           # parity tests, bench (features 64 then 16, sampling 100 x 1000),
#                                           # GEMM tiles 64x64 vs 128x64 (products, then the step), GPU time
#                                           # per kernel (timestamp queries), JAX on the same GPU, host
#                                           # recording, split-K thresholds 64 and 1024, small tiles,
#                                           # Dawn's shader bounds checks off; logs in $OUT
#
# Rehearse `run` on a clone of this repo with .gpukit copied in and no node_modules (lavapipe, no JAX):
#   TINY_DIFFUSION_WEBGPU=vulkan OUT=/tmp/kit-out BENCH_FEATURES=4 BENCH_STEPS=1 BENCH_WARMUP=1 BENCH_SAMPLING=4x3 HOST_FEATURES=4 HOST_STEPS=3 \
#     PROFILE_FEATURES=4 PROFILE_SAMPLER_STEPS=2 GEMM_FEATURES=4 bash scripts/gpu-kit.sh run
# Each stage has its own time limit, so a slow stage costs only itself and the rest still report.
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=.gpukit

pack() {
  set -e
  mkdir -p "$KIT/debs"
  grep -qxF "/$KIT/" .git/info/exclude 2>/dev/null || echo "/$KIT/" >> .git/info/exclude
  xz -T0 -6 -c "$(command -v node)" > "$KIT/node.xz"
  # Everything the tests and benches import; not the web toolchain, the Wasm compiler or other platforms' Dawn.
  tar -C . -cf - --exclude='node_modules/binaryen' --exclude='node_modules/assemblyscript' \
    --exclude='node_modules/typescript' --exclude='node_modules/playwright-core' --exclude='node_modules/vite' \
    --exclude='node_modules/rollup' --exclude='node_modules/@rollup' --exclude='node_modules/@types' \
    --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' node_modules | xz -T0 -6 > "$KIT/node_modules.tar.xz"
  (cd "$KIT/debs" && rm -f ./*.deb && apt-get download libvulkan1 >/dev/null)
  install -m 0644 ../shared/fixtures/seed_jax.py "$KIT/seed_jax.py"
  du -sh "$KIT" "$KIT"/*
}

# At most 8 files come back from $OUT: the stages share six logs (parity, bench, gemm, jax, host, summary).
stage() { # name, log, seconds, command...: runs with a limit, appends to $OUT/log.log, notes the outcome
  local name=$1 log=$OUT/$2.log limit=$3
  shift 3
  local started=$SECONDS
  echo "==== $name: $*" >> "$log"
  timeout "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  echo "$name: rc $rc in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
  tail -n 25 "$log"
}

run() {
  OUT=${OUT:-/tmp/gpu-kit-out}
  mkdir -p "$OUT"
  rm -f "$OUT"/*.log
  : > "$OUT/summary.txt"
  for f in "$KIT"/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
  mkdir -p /tmp/gpu-kit/bin
  xz -dc "$KIT/node.xz" > /tmp/gpu-kit/bin/node && chmod +x /tmp/gpu-kit/bin/node
  export PATH=/tmp/gpu-kit/bin:$PATH
  [ -d node_modules ] || xz -dc "$KIT/node_modules.tar.xz" | tar -xf -
  # The NVIDIA Vulkan driver's manifest: where the lent H200 had it, else wherever the driver put it.
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] || icd=$(timeout 20 find /usr/local/nvidia /usr/share/vulkan /etc/vulkan /usr -name 'nvidia_icd*.json' 2>/dev/null | head -n 1)
  [ -n "$icd" ] && [ -f "$icd" ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-none, the loader searches its default paths}" | tee -a "$OUT/summary.txt"
  export TINY_DIFFUSION_WEBGPU=${TINY_DIFFUSION_WEBGPU:-gpu}
  { nvidia-smi -L 2>/dev/null; nproc; grep -m1 'model name' /proc/cpuinfo; node --version; date -u; } | tee -a "$OUT/summary.txt"

  # Most wanted first: one command may run 600 s, and a stage cut short by it still leaves its log.
  stage parity parity 150 node scripts/run-tests.mjs engine-webgpu
  local features=${BENCH_FEATURES:-64,16}
  stage bench bench 200 node --import tsx bench/bench.ts --backend webgpu --features "$features" \
    --steps "${BENCH_STEPS:-5}" --warmup "${BENCH_WARMUP:-20}" --sampling "${BENCH_SAMPLING:-100x1000}"
  # Which tile height to make the default: the products alone, then the whole step with 128x64 tiles.
  stage gemm gemm 60 env QUICK=1 FEATURES="${GEMM_FEATURES:-64}" node --import tsx bench/webgpu-gemm.ts
  stage bench-rows8 bench 120 node --import tsx bench/bench.ts --backend webgpu --gemm-rows 8 --features "${features%%,*}" \
    --steps "${BENCH_STEPS:-5}" --warmup "${BENCH_WARMUP:-20}" --sampling "${BENCH_SAMPLING:-100x1000}" --skip-forward --skip-gemm
  stage profile gemm 60 env FEATURES="${PROFILE_FEATURES:-64}" SAMPLER_STEPS="${PROFILE_SAMPLER_STEPS:-4}" TOP=30 node --import tsx bench/webgpu-profile.ts
  if python3 -c 'import jax, flax, optax' 2>/dev/null; then
    # Its pictures and arrays stay there (at most 8 files come back); its result is appended to jax.log.
    stage jax jax 120 python3 "$KIT/seed_jax.py" --epochs 25 --features 64 --train-all-params --sample-n 100 \
      --data data/digits.csv.gz --split-json data/split_digit1.json --no-recon --out /tmp/gpu-kit/jax
    cat /tmp/gpu-kit/jax/result.json >> "$OUT/jax.log" 2>/dev/null
  else
    echo "jax: not installed here, skipped" | tee -a "$OUT/summary.txt"
  fi
  stage host host 30 env FEATURES="${HOST_FEATURES:-64}" STEPS="${HOST_STEPS:-30}" node --import tsx bench/webgpu-host.ts
  # When a product splits its K (split-K: partial tiles, then their sum): below 256 output tiles by default.
  # Fewer and more, on the training step and the sampler, replayed only (the bench stage has 256).
  # And 32x32 tiles for such products before any split (--small-tiles), first.
  # And Dawn without its bounds checks in the shaders (toggle disable_robustness), last.
  for variant in "--small-tiles" "--split-k-min 64" "--split-k-min 1024" "robustness-off"; do
    local dawn=""
    [ "$variant" = "robustness-off" ] && { dawn="enable-dawn-features=disable_robustness"; variant=""; }
    # shellcheck disable=SC2086 # the variant is two words on purpose
    stage "variant ${variant#--}${dawn:+$dawn}" bench 75 env TINY_DIFFUSION_DAWN_FLAGS="$dawn" node --import tsx bench/bench.ts --backend webgpu $variant \
      --features "${features%%,*}" --steps "${BENCH_STEPS:-5}" --warmup "${BENCH_WARMUP:-20}" --sampling "${BENCH_SAMPLING:-100x1000}" --skip-forward --skip-gemm --skip-eager
  done
  cat "$OUT/summary.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: bash scripts/gpu-kit.sh pack|run" >&2; exit 2 ;;
esac

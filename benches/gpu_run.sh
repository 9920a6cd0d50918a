#!/usr/bin/env bash
# The one script to run on a GPU machine (issue 5): install the abi3 wheel built on the CPU
# machine with CuPy, torch and TensorLy, run the GPU tests, then the GPU benchmarks; every
# output goes under $OUT. Run from the repository root (tests/ and benches/ are used from it).
#
#   OUT=/path/to/results benches/gpu_run.sh dist/lowdim-*.whl
#
# Environment: OUT (default ./gpu-results), PYTHON (default python3), WHEELHOUSE (a folder of
# wheels for an offline machine: pip uses --no-index --find-links there), CUPY (default
# cupy-cuda12x; cupy-cuda13x for CUDA 13), QUICK=1 (sizes / 4), FULL_SVD=0 (skip
# cupy.linalg.svd of the 20000^2 matrix), CPU_COMPARE=1 (also the CPU section of compare.py).
set -u
WHEEL=${1:?usage: benches/gpu_run.sh path/to/lowdim-*.whl}
OUT=${OUT:-gpu-results}
PY=${PYTHON:-python3}
CUPY=${CUPY:-cupy-cuda12x}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_run.log") 2>&1
echo "== $(date -u +%FT%TZ) gpu_run.sh $WHEEL -> $OUT"

{ nvidia-smi; "$PY" -VV; } > "$OUT/env.txt" 2>&1

PIP=("$PY" -m pip install -q)
if [ -n "${WHEELHOUSE:-}" ]; then PIP+=(--no-index --find-links "$WHEELHOUSE"); fi
"${PIP[@]}" "$WHEEL[test]" "$CUPY" torch tensorly > "$OUT/pip.log" 2>&1 \
  || echo "pip install failed (see pip.log); continuing with what is installed"
"$PY" -m pip list 2>/dev/null | grep -iE "^(lowdim|cupy|torch|tensorly|numpy|array.api)" \
  > "$OUT/versions.txt"
cat "$OUT/versions.txt"

# GPU tests (they skip, and say so, when CuPy or the device is missing), then the whole
# array-API test file (NumPy, array_api_strict and CuPy backends).
"$PY" -m pytest tests -m gpu -q -rs -p no:cacheprovider -o addopts="" \
  --junitxml="$OUT/pytest-gpu.xml" > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest -m gpu: exit $?"; tail -n 3 "$OUT/pytest-gpu.txt"
"$PY" -m pytest tests/test_xp.py -q -rs -p no:cacheprovider -o addopts="" \
  > "$OUT/pytest-xp.txt" 2>&1
echo "pytest test_xp.py: exit $?"; tail -n 3 "$OUT/pytest-xp.txt"

ARGS=()
[ "${QUICK:-0}" = 1 ] && ARGS+=(--quick)
[ "${FULL_SVD:-1}" = 0 ] && ARGS+=(--no-full-svd)
"$PY" benches/compare_gpu.py "${ARGS[@]}" --out "$OUT/compare_gpu.md"
echo "compare_gpu.py: exit $?"

if [ "${CPU_COMPARE:-0}" = 1 ]; then
  "$PY" benches/compare.py --gpu ${QUICK:+--quick} --out "$OUT/compare.md"
  echo "compare.py --gpu: exit $?"
fi
echo "== done; results in $OUT"

#!/usr/bin/env bash
# The GPU check: every GPU test (pytest -m gpu) and the FCN-8s GPU benchmark, then a short table, in under
# 8 minutes. Installs nothing from the network. Run it from anywhere on a machine with CuPy and a CUDA GPU:
#
#     bash bench/gpu_check.sh
#
# - Wheels found in build/whl/ (carried along, e.g. a protobuf new enough for netspec/caffe_pb2.py) are installed
#   from that folder only (pip --no-index) into a private folder put on PYTHONPATH.
# - The golden tests read ../shared (caffe-golden, fixtures); where it is missing, build/gpu_shared is used
#   (a copy of it carried along), or FCN_SHARED if set.
# - CUPY_TF32 is unset: results stay Caffe-faithful.
# - Results go to $GPU_CHECK_DIR (default: a new temporary folder) and, when $OUT is set (the device machine's
#   return folder), are copied there: junit.xml parity.jsonl bench.json pytest.log bench.log summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${GPU_CHECK_DIR:-$(mktemp -d /tmp/fcn-gpu-check-XXXXXX)}
mkdir -p "$RESULTS"
START=$(date +%s)

if compgen -G "build/whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fcn-site \
        build/whl/*.whl && export PYTHONPATH=/tmp/fcn-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${FCN_SHARED:-}" ] && [ ! -d ../shared/caffe-golden ] && [ -d build/gpu_shared/caffe-golden ]; then
    export FCN_SHARED=$PWD/build/gpu_shared
fi
unset CUPY_TF32
export PYTHONUNBUFFERED=1

echo "== preflight"
"$PY" - <<'EOF'
import sys
try:
    import google.protobuf, numpy
    import netspec.caffe_pb2  # noqa: F401  (the generated code checks the protobuf runtime's version)
except Exception as e:
    sys.exit(f"cannot import the engine ({type(e).__name__}: {e}); carry the wheels it needs in build/whl/")
from layers import backend
print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, protobuf {google.protobuf.__version__}, "
      f"cupy {getattr(backend.cupy, '__version__', 'missing')}, CUDA devices: {backend.device_count()}")
if not backend.cuda_available():
    sys.exit("no CUDA device visible to CuPy: nothing to check here")
props = backend.cupy.cuda.runtime.getDeviceProperties(0)
print(f"card: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB, "
      f"compute capability {props['major']}.{props['minor']}")
EOF
if [ $? -ne 0 ]; then
    echo "preflight failed: see above"
    exit 2
fi

echo "== GPU tests (pytest -m gpu)"
rm -f "$RESULTS/parity.jsonl"
FCN_GPU_REPORT="$RESULTS/parity.jsonl" timeout 270 "$PY" -m pytest -q -m gpu -rfE -p no:cacheprovider \
    --junitxml="$RESULTS/junit.xml" tests 2>&1 | tee "$RESULTS/pytest.log" | tail -25
TESTS=${PIPESTATUS[0]}

echo "== FCN-8s GPU benchmark"
timeout 180 "$PY" -m bench.gpu_fcn8s --json "$RESULTS/bench.json" 2>&1 | tee "$RESULTS/bench.log"
BENCH=${PIPESTATUS[0]}

"$PY" -m bench.gpu_report --junit "$RESULTS/junit.xml" --parity "$RESULTS/parity.jsonl" \
    --bench "$RESULTS/bench.json" > "$RESULTS/summary.txt"
echo "(tests exit $TESTS, benchmark exit $BENCH, $(( $(date +%s) - START )) s in all; results in $RESULTS)" \
    >> "$RESULTS/summary.txt"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$RESULTS"/{junit.xml,parity.jsonl,bench.json,pytest.log,bench.log,summary.txt} "$OUT"/ 2>/dev/null
fi
cat "$RESULTS/summary.txt"
[ "$TESTS" -eq 0 ] && [ "$BENCH" -eq 0 ]

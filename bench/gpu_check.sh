#!/usr/bin/env bash
# The GPU check, in one call: the machine's facts, the FCN-8s GPU benchmark (first, on an idle card), every GPU
# test (pytest -m gpu), `python -m solver --gpu 0` against the CPU on a small problem, and optionally the demo
# (in the background while the tests run), then a short table. Installs nothing from the network. Run it from
# anywhere on a machine with CuPy and a CUDA GPU:
#
#     bash bench/gpu_check.sh                          # tests, solver check, benchmark (2 minutes on an H200)
#     GPU_CHECK_DEMO=large bash bench/gpu_check.sh     # also python -m demo --gpu 0 --size large (5 minutes)
#
# - Wheels found in build/whl/ (carried along, e.g. a protobuf new enough for netspec/caffe_pb2.py) are installed
#   from that folder only (pip --no-index) into a private folder put on PYTHONPATH.
# - The golden tests read the test vectors in tests/vectors/ (or FCN_SHARED, if set).
# - CUPY_TF32 is unset: results stay Caffe-faithful.
# - Limits (seconds): GPU_CHECK_BENCH (default 180), GPU_CHECK_TESTS (270), GPU_CHECK_DEMO_LIMIT (330); steps
#   can be left out with GPU_CHECK_SKIP="bench tests solver".
# - Results go to $GPU_CHECK_DIR (default: a new temporary folder); when $OUT is set (the device machine's return
#   folder), summary.txt and results.tgz (every log, the JUnit XML, the parity rows, the benchmark's JSON, the
#   demo's results) are copied there.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${GPU_CHECK_DIR:-$(mktemp -d /tmp/fcn-gpu-check-XXXXXX)}
SKIP=" ${GPU_CHECK_SKIP:-} "
mkdir -p "$RESULTS"
START=$(date +%s)
elapsed() { echo "$(( $(date +%s) - START )) s"; }
save() {    # what is done so far goes back even if a later step outruns the device call's limit
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
        tar -czf "$OUT/results.tgz" -C "$RESULTS" --exclude=demo_out/data --exclude=demo_out/crops \
            --exclude='*.caffemodel' --exclude='*.solverstate' . 2>/dev/null
    fi
}

if compgen -G "build/whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fcn-site \
        build/whl/*.whl && export PYTHONPATH=/tmp/fcn-site${PYTHONPATH:+:$PYTHONPATH}
    [ -d /tmp/fcn-site/bin ] && export PATH=/tmp/fcn-site/bin:$PATH     # e.g. the mpich wheel's mpiexec
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
unset CUPY_TF32
export PYTHONUNBUFFERED=1

echo "== machine"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
    command -v nvcc > /dev/null && nvcc --version | tail -2 | head -1
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
cupy = backend.cupy
props = cupy.cuda.runtime.getDeviceProperties(0)
print(f"card: {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB, compute capability "
      f"{props['major']}.{props['minor']}; CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, driver "
      f"{cupy.cuda.runtime.driverGetVersion()}")
try:
    import torch
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
except Exception as e:
    print(f"torch: not available ({type(e).__name__})")
EOF
} 2>&1 | tee "$RESULTS/machine.txt"
if [ "${PIPESTATUS[0]}" -ne 0 ] || ! grep -q "^card: " "$RESULTS/machine.txt"; then
    echo "preflight failed: see above"
    exit 2
fi

BENCH=skipped
if [[ "$SKIP" != *" bench "* ]]; then
    echo "== FCN-8s GPU benchmark ($(elapsed))"
    timeout "${GPU_CHECK_BENCH:-180}" "$PY" -m bench.gpu_fcn8s --json "$RESULTS/bench.json" 2>&1 \
        | tee "$RESULTS/bench.log"
    BENCH=${PIPESTATUS[0]}
    save
fi

DEMO_PID=
if [ -n "${GPU_CHECK_DEMO:-}" ]; then
    echo "== python -m demo --gpu 0 --size $GPU_CHECK_DEMO, in the background ($(elapsed))"
    ( DEMO_START=$(date +%s)
      timeout "${GPU_CHECK_DEMO_LIMIT:-330}" "$PY" -m demo --gpu 0 --size "$GPU_CHECK_DEMO" \
          --out "$RESULTS/demo_out" > "$RESULTS/demo.log" 2>&1
      status=$?
      echo "demo wall time $(( $(date +%s) - DEMO_START )) s" >> "$RESULTS/demo.log"
      echo "demo exit $status" >> "$RESULTS/demo.log" ) &
    DEMO_PID=$!
fi

TESTS=skipped
if [[ "$SKIP" != *" tests "* ]]; then
    echo "== GPU tests (pytest -m gpu) ($(elapsed))"
    rm -f "$RESULTS/parity.jsonl"
    FCN_GPU_REPORT="$RESULTS/parity.jsonl" timeout "${GPU_CHECK_TESTS:-270}" "$PY" -m pytest -q -m gpu -rfE \
        -p no:cacheprovider --junitxml="$RESULTS/junit.xml" tests 2>&1 | tee "$RESULTS/pytest.log" | tail -25
    TESTS=${PIPESTATUS[0]}
    save
fi

SOLVER=skipped
if [[ "$SKIP" != *" solver "* ]]; then
    echo "== python -m solver --gpu 0 against the CPU ($(elapsed))"
    "$PY" - "$RESULTS/solver" <<'EOF' 2>&1 | tee "$RESULTS/solver.log" | tail -6
import pathlib, re, subprocess, sys
from tests.solver import tiny
losses = {}
for where in ("cpu", "gpu"):
    folder = pathlib.Path(sys.argv[1]) / where
    folder.mkdir(parents=True, exist_ok=True)
    solver = tiny.make_tiny(folder, max_iter=20, snapshot=20)
    cmd = [sys.executable, "-m", "solver", solver] + (["--gpu", "0"] if where == "gpu" else [])
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    print(f"{' '.join(cmd[1:])}: exit {done.returncode}")
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    losses[where] = [float(v) for v in re.findall(r"Iteration \d+.*?, loss = ([-\d.e+]+)", done.stderr)]
    print("  " + "\n  ".join(done.stderr.strip().splitlines()[-3:]))
    if where == "gpu":              # Caffe's `caffe time` on the card, through the Net's timing hook
        cmd = [sys.executable, "-m", "solver", "time", str(folder / "net.prototxt"), "--iterations", "5",
               "--gpu", "0"]
        timed = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        print(f"{' '.join(cmd[1:4])} --gpu 0: exit {timed.returncode}")
        print("  " + "\n  ".join((timed.stdout + timed.stderr).strip().splitlines()[-5:]))
        if timed.returncode:
            sys.exit(1)
worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses["gpu"], losses["cpu"]))
print(f"{len(losses['gpu'])} logged losses, GPU vs CPU largest relative difference {worst:.2e}")
sys.exit(0 if len(losses["gpu"]) == len(losses["cpu"]) > 0 and worst < 1e-4 else 1)
EOF
    SOLVER=${PIPESTATUS[0]}
fi

DEMO=skipped
if [ -n "$DEMO_PID" ]; then
    echo "== waiting for the demo ($(elapsed))"
    wait "$DEMO_PID"
    DEMO=$(sed -n 's/^demo exit //p' "$RESULTS/demo.log")
    tail -15 "$RESULTS/demo.log"
fi

"$PY" -m bench.gpu_report --junit "$RESULTS/junit.xml" --parity "$RESULTS/parity.jsonl" \
    --bench "$RESULTS/bench.json" > "$RESULTS/summary.txt"
{
    cat "$RESULTS/machine.txt"
    [ -f "$RESULTS/solver.log" ] && tail -1 "$RESULTS/solver.log"
    [ -f "$RESULTS/demo_out/results.md" ] && cat "$RESULTS/demo_out/results.md"
    echo "(tests exit $TESTS, solver exit $SOLVER, benchmark exit $BENCH, demo exit $DEMO, $(elapsed) in all;" \
         "results in $RESULTS)"
} >> "$RESULTS/summary.txt"
save
[ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] && cp "$RESULTS/summary.txt" "$OUT"/
cat "$RESULTS/summary.txt"
for status in "$TESTS" "$SOLVER" "$BENCH" "$DEMO"; do
    [ "$status" = 0 ] || [ "$status" = skipped ] || exit 1
done

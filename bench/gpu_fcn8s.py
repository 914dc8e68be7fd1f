"""GPU benchmark: FCN-8s (VGG16 widths, the zoo's voc-fcn8s deploy and train nets) at 500x500 on one GPU, ours
(CuPy) against PyTorch on the same card in the same run, and against the paper's 175 ms (Caffe, Tesla K40c).

    python -m bench.gpu_fcn8s               # from the repository root, on a machine with CuPy and a CUDA GPU
    python -m bench.gpu_fcn8s --dry-run     # anywhere: check the arguments and the nets, print the plan
    python -m bench.gpu_fcn8s --json r.json # also write the results (bench/gpu_check.sh reads them)

Tasks: the forward pass (TEST phase, deploy net) and one training step (train net: forward, backward and Caffe's
SGD update with momentum 0.99 and weight decay 5e-4, FCN's settings), with random weights that are the same for
both sides (He-scaled, bilinear upsampling; bench/cpu_fcn8s.py writes them). Times are medians over --repeats runs
after a warm-up, the device synchronised before and after each run, inputs already on the device. Each side and
task runs in its own child process, so that the GPU memory it reports is its own: ours the peak of CuPy's memory
pool (what it holds after the run, the pool emptied before), PyTorch's max_memory_allocated/reserved.

TF32 stays off unless --tf32: CUPY_TF32 is removed from the children's environment (set to 1 with --tf32), and
PyTorch runs with torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 set alike.
PyTorch (cuDNN, benchmark mode) is an optional peer, never a dependency: without it its columns are left out.
The two sides must agree on the scores and the loss (relative difference under 1e-3 without TF32).
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
PAPER_MS = 175.0                  # FCN-8s inference, 500x500, Caffe on a Tesla K40c (Long et al., CVPR 2015)
AGREE = 1e-3                      # scores and loss, ours vs PyTorch: float32 sums in different orders
TASKS = ("forward", "train")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_fcn8s", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500, help="input height and width (default 500)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per task after a warm-up (default 10)")
    parser.add_argument("--device", type=int, default=0, help="GPU id (default 0)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matrix products on both sides")
    parser.add_argument("--no-torch", action="store_true", help="leave the PyTorch peer out")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--dry-run", action="store_true", help="check the arguments and the nets, print the plan")
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "TASK", "WEIGHTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f"--size must be at least 32 (FCN-8s pools 5 times), got {args.size}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.device < 0:
        parser.error(f"--device must be a GPU id (0, 1, ...), got {args.device}")
    return args


def tf32_environment(env, tf32):
    """The children's environment: CUPY_TF32 only when asked for."""
    env = dict(env)
    env.pop("CUPY_TF32", None)
    if tf32:
        env["CUPY_TF32"] = "1"
    return env


def have_torch():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def plan(args):
    """What a run will do, from the nets as parsed (no GPU needed): a list of lines."""
    from bench import cpu_fcn8s
    deploy, train = cpu_fcn8s.deploy_param(args.size), cpu_fcn8s.train_param(args.size)
    kinds = collections.Counter(layer.type for layer in train.layer)
    sides = ["ours (CuPy)"] + ([] if args.no_torch else ["PyTorch (cuDNN)" + ("" if have_torch() else
                                                                            ": not installed, will be skipped")])
    return [f"nets: {cpu_fcn8s.net_folder()} (deploy {len(deploy.layer)} layers, train {len(train.layer)}: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")",
            f"input: 1x3x{args.size}x{args.size}; GPU {args.device}; {args.repeats} timed runs per task after a "
            f"warm-up; TF32 {'on' if args.tf32 else 'off'}",
            f"tasks: {', '.join(TASKS)} (train = forward + backward + SGD update, momentum 0.99, decay 5e-4)",
            f"sides: {'; '.join(sides)}; paper: {PAPER_MS:g} ms forward (Caffe, Tesla K40c)"]


# ------------------------------------------------------------------------------------------------ children
def _sync():
    from layers import backend
    backend.cupy.cuda.Device().synchronize()


def _timed(fn, repeats, sync):
    fn()                                           # warm-up: kernels compile, the memory pool fills
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _profile(net, run, sync):
    """One more run under the Net's timing hook (device synchronised around each layer): {type|phase: seconds}."""
    profile = collections.Counter()
    with net.timing() as times:
        run()
        sync()
    for layer, forward, backward in zip(net.layers, times.forward, times.backward):
        profile[f"{layer.type}|forward"] += forward
        if backward:
            profile[f"{layer.type}|backward"] += backward
    return dict(profile)


def child_ours(task, size, repeats, device, folder, out):
    from bench import cpu_fcn8s
    from layers import Net, backend
    if not backend.cuda_available():
        raise SystemExit("ours: no CUDA device (CuPy missing or no GPU): the GPU benchmark cannot run")
    cupy = backend.cupy
    backend.use_device(device)
    pool = cupy.get_default_memory_pool()
    image, label = cpu_fcn8s.inputs(size)
    pool.free_all_blocks()
    if task == "forward":
        net = Net(cpu_fcn8s.deploy_param(size), phase="TEST")
        cpu_fcn8s.load_ours(net, folder)               # into the numpy blobs, then moved
        net.to_gpu(device)
        x = cupy.asarray(image)
        pool.free_all_blocks()
        times = _timed(lambda: net.forward(data=x), repeats, _sync)
        peak = pool.total_bytes()
        numpy.save(out / f"ours_forward_{size}.npy", backend.to_cpu(net.blobs["score"].data))
        profile = _profile(net, lambda: net.forward(data=x), _sync)
        check = {}
    else:
        import logging
        from netspec import caffe_pb2
        from solver import SGDSolver
        param = caffe_pb2.SolverParameter(base_lr=1e-10, lr_policy="fixed", momentum=0.99, weight_decay=5e-4,
                                          display=0, max_iter=1000, snapshot=0, type="SGD", average_loss=1)
        param.net_param.CopyFrom(cpu_fcn8s.train_param(size))
        logging.disable(logging.INFO)          # the solver prints its whole parameter set at start
        try:
            solver = SGDSolver(param)
        finally:
            logging.disable(logging.NOTSET)    # in a test's process too, later tests log again
        net = solver.net
        cpu_fcn8s.load_ours(net, folder)
        solver.to_device(device)
        net.set_input("data", cupy.asarray(image))
        net.set_input("label", cupy.asarray(label))
        dropouts = [layer for layer in net.layers if layer.type == "Dropout"]
        for layer in dropouts:                         # the agreement check runs without dropout
            layer.phase = "TEST"
        net.clear_param_diffs()
        check = {"loss": net.forward_backward()}
        for layer in dropouts:
            layer.phase = "TRAIN"
        pool.free_all_blocks()
        times = _timed(lambda: solver.step(1), repeats, _sync)
        peak = pool.total_bytes()
        profile = _profile(net, lambda: solver.step(1), _sync)
    return {"times": times, "peak_mb": peak / 2 ** 20, "profile": profile, "check": check,
            "card": cupy.cuda.runtime.getDeviceProperties(device)["name"].decode(),
            "versions": {"cupy": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
                         "numpy": numpy.__version__},
            "tf32": os.environ.get("CUPY_TF32", "unset")}


def child_torch(task, size, repeats, device, folder, out, tf32):
    import torch
    from bench import cpu_fcn8s
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda", device)
    torch.cuda.set_device(dev)
    sync = torch.cuda.synchronize
    image, label = cpu_fcn8s.inputs(size)
    param = cpu_fcn8s.deploy_param(size) if task == "forward" else cpu_fcn8s.train_param(size)
    params = {k: v.to(dev) for k, v in cpu_fcn8s.torch_params(param, folder, "nchw").items()}
    feeds = {"data": torch.from_numpy(image).to(dev)}
    torch.cuda.reset_peak_memory_stats(dev)
    check = {}
    if task == "forward":
        with torch.no_grad():
            times = _timed(lambda: cpu_fcn8s.torch_run(param, params, feeds, False), repeats, sync)
            blobs, _ = cpu_fcn8s.torch_run(param, params, feeds, False)
        numpy.save(out / f"torch_forward_{size}.npy", blobs["score"].float().cpu().numpy())
    else:
        feeds["label"] = torch.from_numpy(label).to(dev)
        groups = []
        for layer in param.layer:
            for i, spec in enumerate(layer.param):
                t = params.get(f"{layer.name}.{i}")
                if t is None:
                    continue
                t.requires_grad_(spec.lr_mult != 0)
                if spec.lr_mult:
                    groups.append({"params": [t], "lr": 1e-10 * spec.lr_mult, "weight_decay": 5e-4 * spec.decay_mult})
        opt = torch.optim.SGD(groups, lr=1e-10, momentum=0.99)
        _, loss = cpu_fcn8s.torch_run(param, params, feeds, False)     # dropout off, as ours
        check["loss"] = float(loss.detach())
        for t in params.values():
            t.grad = None

        def step():
            opt.zero_grad(set_to_none=True)
            _, loss = cpu_fcn8s.torch_run(param, params, feeds, True)
            loss.backward()
            opt.step()
        times = _timed(step, repeats, sync)
    return {"times": times, "peak_mb": torch.cuda.max_memory_allocated(dev) / 2 ** 20,
            "reserved_mb": torch.cuda.max_memory_reserved(dev) / 2 ** 20, "check": check,
            "card": torch.cuda.get_device_name(dev),
            "versions": {"torch": torch.__version__, "cudnn": torch.backends.cudnn.version()},
            "tf32": tf32}


def run_child(side, task, args, folder, out):
    command = [sys.executable, "-m", "bench.gpu_fcn8s", "--size", str(args.size), "--repeats", str(args.repeats),
               "--device", str(args.device)] + (["--tf32"] if args.tf32 else []) + \
              ["--child", side, task, str(folder), str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=tf32_environment(os.environ,
                                                                                                      args.tf32))
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ the report
def relative_difference(a, b):
    a, b = numpy.asarray(a, numpy.float64), numpy.asarray(b, numpy.float64)
    return float(numpy.abs(a - b).max() / max(numpy.abs(b).max(), 1e-30))


def summarize(results, size, agreement=None):
    """Rows of the table from the children's results: {task: {side: result}} -> dict (also what --json writes)."""
    rows = []
    for task in TASKS:
        ours, torch = results.get(task, {}).get("ours", {}), results.get(task, {}).get("torch", {})
        row = {"task": f"{task} {size}x{size}", "ours_ms": None, "torch_ms": None, "ratio": None,
               "paper_ms": PAPER_MS if task == "forward" and size == 500 else None,
               "ours_mb": ours.get("peak_mb"), "torch_mb": torch.get("peak_mb")}
        if ours.get("times"):
            row["ours_ms"] = 1e3 * statistics.median(ours["times"])
        if torch.get("times"):
            row["torch_ms"] = 1e3 * statistics.median(torch["times"])
        if row["ours_ms"] and row["torch_ms"]:
            row["ratio"] = row["ours_ms"] / row["torch_ms"]
        row["errors"] = {side: r["error"] for side, r in results.get(task, {}).items() if "error" in r}
        rows.append(row)
    card = next((r["card"] for t in results.values() for r in t.values() if "card" in r), "unknown card")
    return {"card": card, "rows": rows, "agreement": agreement or {}}


def format_table(summary):
    def cell(v, fmt):
        return format(v, fmt) if v is not None else "-".rjust(int(fmt.split(".")[0]))
    lines = [f"FCN-8s on {summary['card']}",
             f"{'task':18s}{'ours ms':>10s}{'torch ms':>10s}{'ours/torch':>12s}{'paper ms':>10s}"
             f"{'ours MB':>10s}{'torch MB':>10s}"]
    for r in summary["rows"]:
        lines.append(f"{r['task']:18s}{cell(r['ours_ms'], '10.1f')}{cell(r['torch_ms'], '10.1f')}"
                     f"{cell(r['ratio'], '12.2f')}{cell(r['paper_ms'], '10.0f')}{cell(r['ours_mb'], '10.0f')}"
                     f"{cell(r['torch_mb'], '10.0f')}")
        for side, error in r.get("errors", {}).items():
            lines.append(f"  {side} failed: {error}")
    for what, value in summary["agreement"].items():
        lines.append(f"  {what}: relative difference {value:.2e} ({'ok' if value < AGREE else 'MISMATCH'})")
    return "\n".join(lines)


def print_profile(result, task):
    profile = {tuple(k.split("|")): v for k, v in result.get("profile", {}).items()}
    total = sum(profile.values())
    if not total:
        return
    print(f"our profile, {task} (one run, each layer synchronised, {total * 1e3:.1f} ms):")
    for (kind, phase), seconds in sorted(profile.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {kind:16s} {phase:9s} {seconds * 1e3:8.2f} ms {100 * seconds / total:5.1f}%")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        side, task, folder, out = args.child
        if side == "ours":
            result = child_ours(task, args.size, args.repeats, args.device, Path(folder), Path(out))
        else:
            result = child_torch(task, args.size, args.repeats, args.device, Path(folder), Path(out), args.tf32)
        print(json.dumps(result))
        return 0
    print("\n".join(plan(args)), flush=True)
    if args.dry_run:
        return 0
    from layers import backend
    if not backend.cuda_available():
        print("no CUDA device visible to CuPy (or CuPy missing): the GPU benchmark cannot run here", file=sys.stderr)
        return 2
    sides = ["ours"] + ([] if args.no_torch or not have_torch() else ["torch"])
    results = collections.defaultdict(dict)
    with tempfile.TemporaryDirectory(prefix="fcn8s-gpu-bench-") as tmp:
        folder, out = Path(tmp) / "weights", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        from bench import cpu_fcn8s
        cpu_fcn8s.write_weights(folder)
        for task in TASKS:
            for side in sides:
                result = run_child(side, task, args, folder, out)
                results[task][side] = result
                state = result.get("error") or f"median {1e3 * statistics.median(result['times']):.1f} ms, " \
                                               f"peak {result['peak_mb']:.0f} MB"
                print(f"  {side:6s} {task:8s}: {state}", flush=True)
        agreement = {}
        if "torch" in sides:
            ours, theirs = out / f"ours_forward_{args.size}.npy", out / f"torch_forward_{args.size}.npy"
            if ours.exists() and theirs.exists():
                agreement["scores"] = relative_difference(numpy.load(ours), numpy.load(theirs))
            a, b = (results["train"].get(s, {}).get("check", {}).get("loss") for s in ("ours", "torch"))
            if a is not None and b is not None:
                agreement["training loss (dropout off)"] = abs(a - b) / abs(b)
    summary = summarize(results, args.size, agreement)
    summary["tf32"] = args.tf32
    summary["versions"] = {side: r.get("versions", {}) for t in results.values() for side, r in t.items()}
    for task in TASKS:
        if "profile" in results[task].get("ours", {}):
            print_profile(results[task]["ours"], task)
    print()
    print(format_table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    failed = any(r.get("errors") for r in summary["rows"])
    mismatch = not args.tf32 and any(v >= AGREE for v in agreement.values())
    return 1 if failed or mismatch else 0


if __name__ == "__main__":
    sys.exit(main())

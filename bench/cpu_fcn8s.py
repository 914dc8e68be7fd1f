"""CPU benchmark: FCN-8s (VGG16 widths, Caffe's geometry: pad 100, ceil pooling, crops), ours against PyTorch.

    python -m bench.cpu_fcn8s            # from the repository root; about 10-20 minutes on 2 cores
    python -m bench.cpu_fcn8s --quick    # smaller sizes, one round: a few minutes

Times, as the median of several runs after a warm-up: the forward pass (TEST phase, deploy net) at 500x500 and
256x256, and a training step at 500x500 (train net: forward, backward and Caffe's SGD update with momentum and
weight decay). Random weights (He-scaled, bilinear upsampling), the same for both sides. Each side and task runs
in its own child process, so that its peak resident memory (getrusage maxrss) is its own, and the children of
the two sides are interleaved, rounds apart, so that a machine shared with other work loads both alike.

PyTorch (eager, CPU) is an optional peer and never a dependency of the package: without it the torch columns are
left out. It runs the same NetParameter through an interpreter of its own, once in NCHW and once in channels_last
("CL"); "best" is the faster of the two. Both sides must give the same scores (relative difference under 1e-4).

The report names the BLAS libraries and kernels in use (numpy's and scipy's OpenBLAS; threadpoolctl when it is
installed), OPENBLAS_CORETYPE as found (never changed here), the machine's load average, and a profile of our
time per layer type, forward and backward, with each convolution layer's achieved rate in direct-sum GFLOP/s
against the machine's sgemm peak measured in the same child (so the distance to the limit shows; Winograd's
reduced arithmetic reads above 100%). The target column is issue 17's: forward 500x500 <= 0.75 and 256x256
<= 0.85 of PyTorch's time, the training step <= 0.65, peak memory <= PyTorch's.
"""
import argparse
import collections
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
NETS = [ROOT / "prototxt" / "voc-fcn8s", ROOT / "tests" / "vectors" / "reference" / "fcn-prototxt" / "voc-fcn8s"]
SEED = 1701
SCORE_RTOL = 1e-4


# ------------------------------------------------------------------------------------------------ the nets
def net_folder():
    for folder in NETS:
        if (folder / "deploy.prototxt").exists() and (folder / "train.prototxt").exists():
            return folder
    raise SystemExit(f"no voc-fcn8s deploy.prototxt/train.prototxt in {' or '.join(map(str, NETS))}")


def deploy_param(size):
    from netspec import io
    param = io.read_net(str(net_folder() / "deploy.prototxt"))
    for layer in param.layer:
        if layer.type == "Input":
            del layer.input_param.shape[:]
            layer.input_param.shape.add().dim.extend([1, 3, size, size])
    return param


def train_param(size):
    """The train net with its data layer (Python, reading SBDD) replaced by an Input layer of the same tops."""
    from netspec import caffe_pb2, io
    param = io.read_net(str(net_folder() / "train.prototxt"))
    data = next(layer for layer in param.layer if list(layer.top) == ["data", "label"])
    data.Clear()
    data.name, data.type = "data", "Input"
    data.top.extend(["data", "label"])
    data.input_param.shape.add().dim.extend([1, 3, size, size])
    data.input_param.shape.add().dim.extend([1, 1, size, size])
    data.include.add().phase = caffe_pb2.TRAIN
    return param


def inputs(size):
    rng = numpy.random.default_rng(SEED)
    image = rng.normal(size=(1, 3, size, size)).astype(numpy.float32)
    label = rng.integers(0, 21, size=(1, 1, size, size)).astype(numpy.float32)
    label[rng.random(label.shape) < 0.1] = 255                      # some void pixels, as VOC has
    return image, label


# ------------------------------------------------------------------------------------------------ weights
def write_weights(folder):
    """Random weights for every learnable blob of the train net (which has all of deploy's), one raw float32
    file each, and a manifest of shapes."""
    from layers import Net
    from weights.surgery import upsample_filt
    net = Net(train_param(64), phase="TRAIN")
    rng = numpy.random.default_rng(SEED)
    manifest = {}
    for layer in net.layers:
        for i, blob in enumerate(layer.blobs):
            shape = blob.shape
            if layer.type == "Deconvolution" and i == 0:         # FCN's fixed bilinear upsampling, per class
                value = numpy.zeros(shape, numpy.float32)
                value[range(shape[0]), range(shape[1])] = upsample_filt(shape[2])
            elif i == 0:
                fan_in = int(numpy.prod(shape[1:]))
                gain = 2.0 if not layer.name.startswith("score") else 1.0
                value = (rng.standard_normal(shape, dtype=numpy.float32) * numpy.float32(numpy.sqrt(gain / fan_in)))
            else:
                value = rng.standard_normal(shape, dtype=numpy.float32) * numpy.float32(0.01)
            name = f"{layer.name}.{i}"
            value.tofile(folder / f"{name}.f32")
            manifest[name] = list(shape)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def read_into(path, array):
    """Read a raw float32 file straight into a C-contiguous array (no second copy of the weights)."""
    with open(path, "rb") as f:
        f.readinto(memoryview(array).cast("B"))


def load_ours(net, folder):
    for layer in net.layers:
        for i, blob in enumerate(layer.blobs):
            read_into(folder / f"{layer.name}.{i}.f32", blob.data)


# ------------------------------------------------------------------------------------------------ children
def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux reports KiB


def layer_flops(net):
    """{layer name: multiply-adds x 2} of each Convolution and Deconvolution layer at the net's current shapes
    (the direct sum's count, whatever algorithm runs)."""
    flops = {}
    for layer, bottoms, tops in zip(net.layers, net.bottom_names, net.top_names):
        if layer.type in ("Convolution", "Deconvolution"):
            w = layer.blobs[0].shape
            pixels = net.blobs[tops[0]].count // net.blobs[tops[0]].shape[1] if layer.type == "Convolution" \
                else net.blobs[bottoms[0]].count // net.blobs[bottoms[0]].shape[1]
            flops[layer.name] = 2 * pixels * w[0] * w[1] * w[2] * w[3]
    return flops


def conv_flops(net):
    """{layer type: multiply-adds x 2} summed over the Convolution and Deconvolution layers."""
    flops = collections.Counter()
    types = {layer.name: layer.type for layer in net.layers}
    for name, f in layer_flops(net).items():
        flops[types[name]] += f
    return flops


def profiled(net, run):
    """Run `run()` once under the Net's timing hook: ({(layer type, 'forward'|'backward'): seconds}, plus the
    time outside the layers as ('other', 'step') (the SGD update, for a training step); {layer name: [forward,
    backward] seconds} of the Convolution layers)."""
    profile = collections.Counter()
    per_layer = {}
    with net.timing() as times:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    for layer, forward, backward in zip(net.layers, times.forward, times.backward):
        profile[(layer.type, "forward")] += forward
        if backward:
            profile[(layer.type, "backward")] += backward
        if layer.type == "Convolution":
            per_layer[layer.name] = [forward, backward or 0.0]
    profile[("other", "step")] += max(0.0, wall - sum(times.forward) - sum(times.backward))
    return profile, per_layer


PEAK_SHAPE = (512, 4608, 1936)      # conv5_x at 500x500 as one GEMM: M = 512 outputs, K = 512 x 3 x 3, N = 44 x 44


def sgemm_peak(repeats=5):
    """The machine's sgemm rate (GFLOP/s) through our BLAS binding on all the kernels' threads (the pool shares
    the GEMM out in slabs, as the convolution strategies do): the best of `repeats` runs of PEAK_SHAPE."""
    from layers.kernels import blas
    from layers.kernels.threads import POOL
    m, k, n = PEAK_SHAPE
    rng = numpy.random.default_rng(0)
    a, b = (rng.standard_normal(shape, dtype=numpy.float32) for shape in ((m, k), (k, n)))
    c = numpy.empty((m, n), numpy.float32)
    best = float("inf")
    with POOL:
        for _ in range(repeats + 1):
            start = time.perf_counter()
            blas.split_gemm(c.dtype, m, n, k, blas.address(a), k, blas.address(b), n, blas.address(c), n)
            best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def child_ours(task, size, repeats, folder, out):
    image, label = inputs(size)
    result = {}
    if task == "forward":
        from layers import Net
        net = Net(deploy_param(size), phase="TEST")
        result["flops"] = dict(conv_flops(net))
        result["layer_flops"] = layer_flops(net)
        load_ours(net, folder)
        net.release_blobs = True              # TEST-phase inference: keep only blobs that are still to be read
        net.forward(data=image)               # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scores = net.forward(data=image)["score"]
            times.append(time.perf_counter() - start)
        numpy.save(out / f"ours_forward_{size}.npy", scores)
        profile, result["layers"] = profiled(net, lambda: net.forward(data=image))
        result["profile"] = {f"{t}|{p}": v for (t, p), v in profile.items()}
    else:
        import logging
        from netspec import caffe_pb2
        from solver import SGDSolver
        param = caffe_pb2.SolverParameter(base_lr=1e-10, lr_policy="fixed", momentum=0.99, weight_decay=5e-4,
                                          display=0, max_iter=1000, snapshot=0, type="SGD", average_loss=1)
        param.net_param.CopyFrom(train_param(size))
        logging.disable(logging.INFO)          # the solver prints its whole parameter set at start
        try:
            solver = SGDSolver(param)
        finally:
            logging.disable(logging.NOTSET)    # in a test's process too, later tests log again
        net = solver.net
        result["flops"] = dict(conv_flops(net))
        result["layer_flops"] = layer_flops(net)
        load_ours(net, folder)
        net.set_input("data", image)
        net.set_input("label", label)
        result["check"] = train_check_ours(net, out, size)
        solver.step(1)                         # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            solver.step(1)
            times.append(time.perf_counter() - start)
        profile, result["layers"] = profiled(net, lambda: solver.step(1))       # 'other': the SGD update
        result["profile"] = {f"{t}|{p}": v for (t, p), v in profile.items()}
    from layers.kernels.threads import POOL
    result.update(times=times, max_rss_mb=max_rss_mb(), threads=POOL.size)
    result["sgemm_peak"] = sgemm_peak()        # after the peak memory is read: its buffers are not the net's
    return result


CHECK_GRADS = ("conv1_1", "conv3_1", "fc7", "score_fr", "score_pool3")


def train_check_ours(net, out, size):
    """Loss and some weight gradients of one forward/backward with dropout off, for the comparison."""
    dropouts = [layer for layer in net.layers if layer.type == "Dropout"]
    for layer in dropouts:
        layer.phase = "TEST"
    net.clear_param_diffs()
    loss = net.forward_backward()
    for name in CHECK_GRADS:
        numpy.save(out / f"ours_grad_{name}_{size}.npy", net.params[name][0].diff)
    net.clear_param_diffs()
    for layer in dropouts:
        layer.phase = "TRAIN"
    return {"loss": loss}


# --- the PyTorch peer: an interpreter of the same NetParameter
def torch_params(param, folder, layout):
    import torch
    manifest = json.loads((folder / "manifest.json").read_text())
    params = {}
    for layer in param.layer:
        for i in range(4):
            name = f"{layer.name}.{i}"
            if name not in manifest:
                break
            shape = manifest[name]
            fmt = torch.channels_last if layout == "cl" and len(shape) == 4 else torch.contiguous_format
            t = torch.empty(shape, memory_format=fmt)
            if fmt is torch.contiguous_format:
                read_into(folder / f"{name}.f32", t.numpy())
            else:                               # read in slabs, so that no second full copy exists
                per = int(numpy.prod(shape[1:]))
                step = max(1, (16 << 20) // (4 * per))
                with open(folder / f"{name}.f32", "rb") as f:
                    for s in range(0, shape[0], step):
                        slab = numpy.fromfile(f, numpy.float32, count=per * min(step, shape[0] - s))
                        t[s:s + step] = torch.from_numpy(slab.reshape(-1, *shape[1:]))
            params[name] = t
    return params


def torch_run(param, params, feeds, train):
    """Run the net's layers in order on tensors; drop each blob after its last reader, as eager code does."""
    import torch.nn.functional as F
    last_use = {}
    for index, layer in enumerate(param.layer):
        for name in layer.bottom:
            last_use[name] = index
    blobs = dict(feeds)
    loss = None
    for index, layer in enumerate(param.layer):
        kind, b = layer.type, [blobs[name] for name in layer.bottom]
        p = layer.convolution_param
        if kind == "Input":
            continue
        if kind == "Convolution":
            y = F.conv2d(b[0], params[f"{layer.name}.0"], params.get(f"{layer.name}.1") if p.bias_term else None,
                         stride=(p.stride or [1])[0], padding=(p.pad or [0])[0], dilation=(p.dilation or [1])[0],
                         groups=p.group)
        elif kind == "Deconvolution":
            y = F.conv_transpose2d(b[0], params[f"{layer.name}.0"],
                                   params.get(f"{layer.name}.1") if p.bias_term else None,
                                   stride=(p.stride or [1])[0], padding=(p.pad or [0])[0], groups=p.group)
        elif kind == "ReLU":
            y = F.relu(b[0], inplace=True)
        elif kind == "Pooling":
            q = layer.pooling_param
            if q.pool != 0:
                raise SystemExit(f"the torch peer knows MAX pooling only, not layer {layer.name}")
            y = F.max_pool2d(b[0], q.kernel_size, q.stride, q.pad, ceil_mode=True)
        elif kind == "Dropout":
            y = F.dropout(b[0], layer.dropout_param.dropout_ratio, training=train)
        elif kind == "Crop":
            axis = layer.crop_param.axis
            offsets = list(layer.crop_param.offset) or [0]
            window = [slice(None)] * axis
            for i, size in enumerate(b[1].shape[axis:]):
                o = offsets[0] if len(offsets) == 1 else offsets[i]
                window.append(slice(o, o + size))
            y = b[0][tuple(window)]
        elif kind == "Eltwise":
            coeff = list(layer.eltwise_param.coeff) or [1.0] * len(b)
            y = sum(c * t if c != 1 else t for c, t in zip(coeff, b))
        elif kind == "SoftmaxWithLoss":
            label = b[1][:, 0].long()
            loss = F.cross_entropy(b[0], label, ignore_index=layer.loss_param.ignore_label, reduction="sum")
            loss = loss / b[0].shape[0]          # normalize: false is BATCH_SIZE
            y = loss
        else:
            raise SystemExit(f"the torch peer has no {kind} layer ({layer.name})")
        for name in layer.top:
            blobs[name] = y
        for name in layer.bottom:
            if last_use.get(name) == index and name not in layer.top:
                blobs.pop(name, None)
    return blobs, loss


def child_torch(layout, task, size, repeats, folder, out):
    import torch
    image, label = inputs(size)
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    x = torch.from_numpy(image).contiguous(memory_format=fmt)
    result = {}
    if task == "forward":
        param = deploy_param(size)
        params = torch_params(param, folder, layout)
        with torch.no_grad():
            torch_run(param, params, {"data": x}, False)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                blobs, _ = torch_run(param, params, {"data": x}, False)
                times.append(time.perf_counter() - start)
        numpy.save(out / f"torch-{layout}_forward_{size}.npy", blobs["score"].contiguous().numpy())
    else:
        param = train_param(size)
        params = torch_params(param, folder, layout)
        feeds = {"data": x, "label": torch.from_numpy(label)}
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
        result["check"] = train_check_torch(param, params, feeds, out, size, layout)

        def step():
            opt.zero_grad(set_to_none=True)
            _, loss = torch_run(param, params, feeds, True)
            loss.backward()
            opt.step()
        step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    result.update(times=times, max_rss_mb=max_rss_mb(), threads=torch.get_num_threads())
    return result


def train_check_torch(param, params, feeds, out, size, layout):
    _, loss = torch_run(param, params, feeds, False)
    loss.backward()
    for name in CHECK_GRADS:
        numpy.save(out / f"torch-{layout}_grad_{name}_{size}.npy", params[f"{name}.0"].grad.contiguous().numpy())
    for t in params.values():
        t.grad = None
    return {"loss": float(loss.detach())}


# ------------------------------------------------------------------------------------------------ the report
def blas_report():
    lines = []
    try:
        import threadpoolctl
        for info in threadpoolctl.threadpool_info():
            lines.append(f"  {info.get('internal_api')} {info.get('version')} kernel {info.get('architecture')} "
                         f"threads {info.get('num_threads')} ({os.path.basename(info.get('filepath', ''))})")
    except ImportError:
        lines += _openblas_by_hand()
    for module in ("numpy", "scipy"):
        try:
            config = __import__(module).show_config(mode="dicts")
            blas = config["Build Dependencies"]["blas"]
            lines.append(f"  {module} built with {blas.get('name')} {blas.get('version')} "
                         f"({' '.join(str(blas.get('openblas configuration', '')).split())})")
        except Exception as e:                                      # older numpy/scipy: no dict mode
            lines.append(f"  {module}: build configuration unavailable ({type(e).__name__})")
    lines.append(f"  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} (reported, never changed); "
                 f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}; "
                 f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    return lines


def _openblas_by_hand():
    """Without threadpoolctl: ask the OpenBLAS bundled with numpy and scipy wheels for its kernel."""
    import ctypes
    import glob
    found = []
    for module, suffix in (("numpy", "64_"), ("scipy", "")):
        here = os.path.dirname(__import__(module).__file__)
        for path in sorted(glob.glob(os.path.join(here, "..", f"{module}.libs", "*openblas*"))):
            try:
                lib = ctypes.CDLL(path)
                core = getattr(lib, f"scipy_openblas_get_corename{suffix}")
                config = getattr(lib, f"scipy_openblas_get_config{suffix}")
                threads = getattr(lib, f"scipy_openblas_get_num_threads{suffix}")
                core.restype = config.restype = ctypes.c_char_p
                found.append(f"  {module}'s {os.path.basename(path)}: kernel {core().decode()}, threads {threads()}"
                             f" ({config().decode().strip()})")
            except (OSError, AttributeError):
                pass
    return found or ["  (kernel unknown: install threadpoolctl to see it)"]


def machine_report():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = open("/proc/cpuinfo").read()
        flags = "AVX-512" if "avx512f" in text else "AVX2" if "avx2" in text else ""
    except OSError:
        pass
    return f"{cpu} ({flags}), {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}, numpy {numpy.__version__}"


def run_child(side, task, size, repeats, folder, out, threads=None):
    command = [sys.executable, "-m", "bench.cpu_fcn8s", "--child", side, task, str(size), str(repeats),
               str(folder), str(out)]
    env = dict(os.environ)
    if threads:                # both sides read these at start-up (OpenBLAS, and OpenMP in PyTorch)
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{side} {task} {size} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def relative_difference(a, b):
    return float(numpy.abs(a.astype(numpy.float64) - b).max() / max(numpy.abs(b).max(), 1e-30))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_fcn8s", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="forward at 256 and 128, training at 256, one round")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per child (default 3, quick 2)")
    parser.add_argument("--rounds", type=int, default=None, help="children per side and task (default 2)")
    parser.add_argument("--no-torch", action="store_true", help="leave the PyTorch peer out")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both sides (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS of the children); "
                             "--threads 1 compares the work per core, which a busy machine disturbs least")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, task, size, repeats, folder, out = args.child
        run = child_ours if side == "ours" else (
            lambda *a: child_torch(side.split("-")[1], *a))
        print(json.dumps(run(task, int(size), int(repeats), Path(folder), Path(out))))
        return

    big, small = (256, 128) if args.quick else (500, 256)
    repeats = args.repeats or (2 if args.quick else 3)
    rounds = args.rounds or (1 if args.quick else 2)
    tasks = [("forward", big), ("forward", small), ("train", big)]
    have_torch = not args.no_torch and torch_installed()
    sides = ["ours"] + (["torch-nchw", "torch-cl"] if have_torch else [])
    load_before = os.getloadavg()
    print(f"FCN-8s CPU benchmark ({'quick' if args.quick else 'full'}): nets from {net_folder()}")
    print_environment(have_torch)
    if args.threads:
        print(f"threads per side: {args.threads} (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set for the children)")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)

    times = collections.defaultdict(list)
    rss = collections.defaultdict(float)
    results = {}
    with tempfile.TemporaryDirectory(prefix="fcn8s-bench-") as tmp:
        folder, out = Path(tmp) / "weights", Path(tmp) / "out"
        folder.mkdir()
        out.mkdir()
        write_weights(folder)
        for r in range(rounds):
            for task, size in tasks:
                order = sides[r % len(sides):] + sides[:r % len(sides)]      # alternate who goes first
                for side in order:
                    result = run_child(side, task, size, repeats, folder, out, args.threads)
                    times[(side, task, size)] += result["times"]
                    rss[(side, task, size)] = max(rss[(side, task, size)], result["max_rss_mb"])
                    results.setdefault((side, task, size), result)
                    print(f"  round {r + 1}: {side:10s} {task:7s} {size}: "
                          f"{' '.join(f'{t:.2f}' for t in result['times'])} s, "
                          f"peak {result['max_rss_mb']:.0f} MB, {result['threads']} threads, "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
        checks = compare(sides, tasks, results, out)
    report(sides, tasks, times, rss, results, checks, load_before)


def print_environment(have_torch):
    """The machine, the BLAS and the PyTorch peer a benchmark runs against (bench/cpu_vision_nets.py too)."""
    print(f"machine: {machine_report()}")
    print("BLAS:")
    print("\n".join(blas_report()))
    if have_torch:
        import torch
        print(f"PyTorch {torch.__version__} (eager, CPU, {torch.get_num_threads()} threads, "
              f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'})")
    else:
        print("PyTorch: not installed (or --no-torch): the peer columns are skipped")


def torch_installed():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


def compare(sides, tasks, results, out):
    lines, ok = [], True
    for side in sides[1:]:
        for task, size in tasks:
            if task == "forward":
                ours = numpy.load(out / f"ours_forward_{size}.npy")
                theirs = numpy.load(out / f"{side}_forward_{size}.npy")
                d = relative_difference(ours, theirs)
                ok &= d < SCORE_RTOL
                lines.append(f"  scores {size}x{size} vs {side}: max relative difference {d:.2e} "
                             f"({'ok' if d < SCORE_RTOL else 'MISMATCH'}, limit {SCORE_RTOL:g})")
            else:
                a, b = results[("ours", task, size)]["check"]["loss"], results[(side, task, size)]["check"]["loss"]
                d = abs(a - b) / abs(b)
                grads = []
                for name in CHECK_GRADS:
                    g = relative_difference(numpy.load(out / f"ours_grad_{name}_{size}.npy"),
                                            numpy.load(out / f"{side}_grad_{name}_{size}.npy"))
                    grads.append(f"{name} {g:.1e}")
                lines.append(f"  training (dropout off) vs {side}: loss {a:.6g} vs {b:.6g} (relative {d:.1e}); "
                             f"weight gradients: {', '.join(grads)}")
    if len(sides) == 3:                 # the two torch layouts against each other: float32's own spread
        task, size = next((t, z) for t, z in tasks if t == "train")
        grads = []
        for name in CHECK_GRADS:
            a, b = (numpy.load(out / f"{side}_grad_{name}_{size}.npy") for side in sides[1:])
            grads.append(f"{name} {relative_difference(a, b):.1e}")
        lines.append(f"  for scale, {sides[1]} vs {sides[2]} weight gradients: {', '.join(grads)} (max pooling sends "
                     f"a gradient one way or the other on near-ties, which float32 rounding decides)")
    return lines, ok


# issue 17's targets, ours / the faster torch layout, at the full sizes (500x500 and 256x256; --quick runs 256 and
# 128, where they are printed for orientation only)
TIME_TARGETS = {("forward", 0): 0.75, ("forward", 1): 0.85, ("train", 2): 0.65}
MEMORY_TARGET = 1.00               # peak resident memory, ours / the smaller torch layout's, forward and training


def report(sides, tasks, times, rss, results, checks, load_before):
    med = {k: statistics.median(v) for k, v in times.items()}
    names = {"ours": "ours", "torch-nchw": "torch NCHW", "torch-cl": "torch CL"}
    print()
    header = f"{'task':22s}" + "".join(f"{names[s]:>12s}" for s in sides)
    if len(sides) > 1:
        header += f"{'ours/best':>11s}{'target':>9s}"
    print(header)
    for index, (task, size) in enumerate(tasks):
        label = f"{'forward' if task == 'forward' else 'train step'} {size}x{size} (s)"
        row = f"{label:22s}" + "".join(f"{med[(s, task, size)]:12.3f}" for s in sides)
        if len(sides) > 1:
            best = min(med[(s, task, size)] for s in sides[1:])
            ratio = med[("ours", task, size)] / best
            target = TIME_TARGETS[(task, index)]
            row += f"{ratio:11.2f}{'<= ' + format(target, '.2f'):>9s}" + ("  ok" if ratio <= target else "  MISSED")
        print(row)
    for index, (task, size) in enumerate(tasks):
        label = f"peak RSS {task} {size} (MB)"
        row = f"{label:22s}" + "".join(f"{rss[(s, task, size)]:12.0f}" for s in sides)
        if len(sides) > 1:
            best = min(rss[(s, task, size)] for s in sides[1:])
            ratio = rss[("ours", task, size)] / best
            row += f"{ratio:11.2f}"
            if index != 1:                 # the 500x500 forward and the training step
                verdict = "  ok" if ratio <= MEMORY_TARGET else "  MISSED"
                row += f"{'<= ' + format(MEMORY_TARGET, '.2f'):>9s}{verdict}"
        print(row)
    print("(targets: issue 17, for the full run's 500x500 and 256x256; a --quick run's sizes are smaller)")
    print("(times: medians of " + ", ".join(f"{len(v)}" for v in list(times.values())[:1]) +
          " runs per cell after a warm-up; ratios are ours / the faster torch layout)")
    if checks[0]:
        print("correctness:")
        print("\n".join(checks[0]))
    for task, size in (tasks[0], tasks[2]):
        print_profile(results[("ours", task, size)], task, size)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} on {os.cpu_count()} CPUs "
          f"(a load above the CPU count means other work shared the machine: compare ratios, not seconds)")
    if len(checks[0]) and not checks[1]:
        raise SystemExit("the two sides disagree on the scores")


def print_profile(result, task, size):
    profile = {tuple(k.split("|")): v for k, v in result["profile"].items()}
    total = sum(profile.values())
    print(f"our profile, {task} {size}x{size} (one instrumented run, {total:.2f} s):")
    flops = result.get("flops", {})
    for (kind, phase), seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
        if seconds < 0.0005:
            continue
        rate = ""
        if phase == "forward" and kind in flops:
            rate = f"  {flops[kind] / seconds / 1e9:6.1f} GFLOP/s ({flops[kind] / 1e9:.1f} GFLOP, direct-sum count)"
        print(f"  {kind:16s} {phase:9s} {seconds * 1e3:9.1f} ms {100 * seconds / total:5.1f}%{rate}")
    print_layer_rates(result, task)


def print_layer_rates(result, task):
    """Each Convolution layer's achieved rate in direct-sum GFLOP/s against the measured sgemm peak: above 100%
    is the reduced arithmetic of Winograd; the backward pass counts two direct sums (data and weight gradient,
    or one where no data gradient is needed)."""
    peak, flops, layers = result.get("sgemm_peak"), result.get("layer_flops", {}), result.get("layers", {})
    if not peak or not layers:
        return
    print(f"  per layer, direct-sum GFLOP/s vs the measured sgemm peak of {peak:.0f} GFLOP/s "
          f"({PEAK_SHAPE[0]}x{PEAK_SHAPE[1]}x{PEAK_SHAPE[2]}, our BLAS binding, all kernel threads):")
    for name, (forward, backward) in layers.items():
        f = flops.get(name, 0)
        if f < 1e9 or forward <= 0:
            continue
        rate = f / forward / 1e9
        line = f"    {name:10s} {f / 1e9:6.1f} GFLOP  forward {forward * 1e3:7.1f} ms {rate:6.0f} GFLOP/s " \
               f"{100 * rate / peak:4.0f}%"
        if task == "train" and backward > 0:
            sums = 1 if name == "conv1_1" else 2              # the data layer needs no input gradient
            rate = sums * f / backward / 1e9
            line += f"  backward {backward * 1e3:7.1f} ms {rate:6.0f} GFLOP/s {100 * rate / peak:4.0f}%"
        print(line)


if __name__ == "__main__":
    main()

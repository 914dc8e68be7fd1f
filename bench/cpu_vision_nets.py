"""CPU benchmark: ResNet-50 and MobileNet v1 forward (224x224, batch 1, TEST phase), ours against PyTorch.

    python -m bench.cpu_vision_nets              # from the repository root; about a minute on 2 cores
    python -m bench.cpu_vision_nets --repeats 5 --rounds 1 --no-torch

The nets are the zoo's deploy prototxts (prototxt/ilsvrc-nets/resnet-50 and mobilenet-v1: convolutions without
bias, each followed by BatchNorm with global statistics, Scale and ReLU; MobileNet's 3x3 convolutions are
depthwise, group = channels). Random weights (He-scaled, BatchNorm statistics with a moving-average factor other
than 1) made from one seed, the same for both sides. Times are medians of --repeats forwards after a warm-up; each
side runs in its own child process (no thread pool of one side spinning beside the other's work), and the
two sides are interleaved round by round so that a machine shared with other work loads both alike.

PyTorch (eager, CPU) is an optional peer, never a dependency: it runs the same NetParameter through an interpreter
of its own, as a PyTorch model would be written: each BatchNorm and the Scale after it become one
F.batch_norm with an affine part, the depthwise convolutions F.conv2d with groups, once in NCHW and once in
channels_last ("CL"); "best" is the faster of the two. Both sides must give the same scores (the classifier's
outputs before Softmax, relative difference under 1e-4).

Our profile splits the forward by layer type, with depthwise Convolution apart, and gives the share of
BatchNorm + Scale + ReLU and of depthwise convolution: neither should dominate.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
NETS = {"resnet-50": "fc1000", "mobilenet-v1": "fc7"}          # model: the classifier's blob (the scores)
SIZE = 224
SEED = 1701
SCORE_RTOL = 1e-4
NORMALISING = ("BatchNorm", "Scale", "ReLU")
PROFILED = 5                  # instrumented forwards whose per-layer-type times are averaged


# ------------------------------------------------------------------------------------------------ nets, weights
def deploy_param(model):
    from netspec import io
    param = io.read_net(str(ROOT / "prototxt" / "ilsvrc-nets" / model / "deploy.prototxt"))
    param.layer[0].input_param.shape[0].dim[:] = [1, 3, SIZE, SIZE]
    return param


def random_weights(net):
    """{layer name: [arrays]}: He-scaled weights, small biases; BatchNorm: mean * f, variance * f and the factor
    f (as Caffe stores them after training), Scale: gamma near 1, beta small. The same from every process."""
    rng = numpy.random.default_rng(SEED)
    weights = {}
    for layer in net.layers:
        arrays = []
        for i, blob in enumerate(layer.blobs):
            shape = blob.shape
            if layer.type == "BatchNorm":
                factor = numpy.float32(999.0)
                value = [rng.normal(0, 0.1, shape) * factor, rng.uniform(0.5, 1.5, shape) * factor,
                         numpy.full(shape, factor)][i]
            elif layer.type == "Scale":
                value = rng.normal(1, 0.1, shape) if i == 0 else rng.normal(0, 0.1, shape)
            elif i == 0:
                value = rng.standard_normal(shape) * numpy.sqrt(2.0 / numpy.prod(shape[1:]))
            else:
                value = rng.normal(0, 0.01, shape)
            arrays.append(numpy.asarray(value, numpy.float32))
        if arrays:
            weights[layer.name] = arrays
    return weights


def image():
    return numpy.random.default_rng(SEED + 1).normal(0, 50, (1, 3, SIZE, SIZE)).astype(numpy.float32)


# ------------------------------------------------------------------------------------------------ ours
def layer_kind(layer):
    """The profile's row: the layer type, with depthwise Convolution apart."""
    from layers.kernels.depthwise import is_depthwise
    if layer.type == "Convolution" and is_depthwise(layer.channels, layer.group, layer.blobs[0].shape):
        return "Convolution (depthwise)"
    return layer.type


def child_ours(model, repeats):
    from layers import Net
    net = Net(deploy_param(model), phase="TEST")
    for name, arrays in random_weights(net).items():
        for blob, value in zip(net.params[name], arrays):
            blob.data[...] = value
    net.release_blobs = True                 # inference: keep only blobs a later layer reads
    x = image()
    net.forward(data=x)                      # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        net.forward(data=x)
        times.append(time.perf_counter() - start)
    scores = net.forward(data=x, end=NETS[model])[NETS[model]].copy()
    profile = collections.Counter()
    with net.timing() as layer_times:        # time each layer of PROFILED more forwards
        for _ in range(PROFILED):
            net.forward(data=x)
    for layer, seconds in zip(net.layers, layer_times.forward):
        profile[layer_kind(layer)] += seconds
    from layers.kernels.threads import POOL
    return {"times": times, "scores": scores.reshape(-1).tolist(),
            "profile": {kind: seconds / PROFILED for kind, seconds in profile.items()}, "threads": POOL.size}


# ------------------------------------------------------------------------------------------------ the peer
def torch_run(param, params, x, keep):
    """The net's layers in order on tensors, as a PyTorch model computes them: BatchNorm + Scale fused into one
    F.batch_norm (inference), ReLU in place; each blob but `keep` dropped after its last reader."""
    import torch.nn.functional as F
    layers = [layer for layer in param.layer if layer.type != "Input"]
    last_use = {name: i for i, layer in enumerate(layers) for name in layer.bottom}
    blobs = {"data": x}
    skip = set()
    for index, layer in enumerate(layers):
        if index in skip:
            continue
        kind, b = layer.type, [blobs[name] for name in layer.bottom]
        if kind == "Convolution":
            p = layer.convolution_param
            y = F.conv2d(b[0], params[layer.name][0], params[layer.name][1] if p.bias_term else None,
                         stride=(p.stride or [1])[0], padding=(p.pad or [0])[0], groups=p.group)
        elif kind == "BatchNorm":
            mean, var = params[layer.name]
            follow = layers[index + 1] if index + 1 < len(layers) else None
            weight = bias = None
            if follow is not None and follow.type == "Scale" and list(follow.bottom) == list(layer.top):
                weight, bias = params[follow.name]
                skip.add(index + 1)
            y = F.batch_norm(b[0], mean, var, weight, bias, False, 0.0, layer.batch_norm_param.eps)
        elif kind == "ReLU":
            y = F.relu(b[0], inplace=True)
        elif kind == "Pooling":
            q = layer.pooling_param
            size = b[0].shape[2:] if q.global_pooling else q.kernel_size
            pool = F.max_pool2d if q.pool == 0 else F.avg_pool2d
            y = pool(b[0], size, 1 if q.global_pooling else q.stride, q.pad, ceil_mode=True)
        elif kind == "Eltwise":
            y = b[0].add_(b[1]) if last_use.get(layer.bottom[0]) == index else b[0] + b[1]
        elif kind == "InnerProduct":
            y = F.linear(b[0].flatten(1), params[layer.name][0], params[layer.name][1])
        elif kind == "Softmax":
            y = F.softmax(b[0], dim=1)
        else:
            raise SystemExit(f"the torch peer has no {kind} layer ({layer.name})")
        for name in layer.top:
            blobs[name] = y
        for name in layer.bottom:
            if last_use.get(name) == index and name not in layer.top and name != keep:
                blobs.pop(name, None)
    return blobs


def torch_params(param, weights, fmt):
    """{layer name: [tensors]} of our weights, 4-D ones in memory format `fmt`; BatchNorm's blobs become the
    running mean and variance a PyTorch model holds (Caffe's blobs over the moving-average factor)."""
    import torch
    params = {}
    for layer in param.layer:
        arrays = weights.get(layer.name)
        if arrays and layer.type == "BatchNorm":
            arrays = [arrays[0] / arrays[2], arrays[1] / arrays[2]]
        if arrays:
            params[layer.name] = [torch.from_numpy(a).contiguous(memory_format=fmt) if a.ndim == 4
                                  else torch.from_numpy(a) for a in arrays]
    return params


def child_torch(model, repeats, layout):
    import torch
    from layers import Net
    param = deploy_param(model)
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    params = torch_params(param, random_weights(Net(param, phase="TEST")), fmt)
    x = torch.from_numpy(image()).contiguous(memory_format=fmt)
    with torch.no_grad():
        torch_run(param, params, x, NETS[model])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            blobs = torch_run(param, params, x, NETS[model])
            times.append(time.perf_counter() - start)
    scores = blobs[NETS[model]].reshape(-1).numpy()
    return {"times": times, "scores": scores.tolist(), "threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------------------------ the run
def run_child(side, model, repeats, threads=None):
    command = [sys.executable, "-m", "bench.cpu_vision_nets", "--child", side, model, str(repeats)]
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{side} {model} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_vision_nets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per child (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="children per side and net (default 2)")
    parser.add_argument("--no-torch", action="store_true", help="leave the PyTorch peer out")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both sides (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS of the children)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, model, repeats = args.child
        result = child_ours(model, int(repeats)) if side == "ours" else \
            child_torch(model, int(repeats), side.split("-")[1])
        print(json.dumps(result))
        return

    from bench.cpu_fcn8s import print_environment, torch_installed
    have_torch = not args.no_torch and torch_installed()
    sides = ["ours"] + (["torch-nchw", "torch-cl"] if have_torch else [])
    load_before = os.getloadavg()
    print(f"ResNet-50 and MobileNet v1 forward, {SIZE}x{SIZE}, batch 1 (prototxt/ilsvrc-nets)")
    print_environment(have_torch)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)

    times = collections.defaultdict(list)
    results = {}
    for r in range(args.rounds):
        for model in NETS:
            order = sides[r % len(sides):] + sides[:r % len(sides)]          # alternate who goes first
            for side in order:
                result = run_child(side, model, args.repeats, args.threads)
                times[(side, model)] += result["times"]
                results.setdefault((side, model), result)
                median = statistics.median(result["times"]) * 1e3
                print(f"  round {r + 1}: {side:10s} {model:12s} median {median:7.1f} ms ({result['threads']} threads, "
                      f"load {os.getloadavg()[0]:.2f})", flush=True)
    ok = report(sides, times, results, load_before)
    if not ok:
        raise SystemExit("the two sides disagree on the scores")


def report(sides, times, results, load_before):
    names = {"ours": "ours", "torch-nchw": "torch NCHW", "torch-cl": "torch CL"}
    print()
    for label, summary in (("median", statistics.median), ("fastest", min)):
        ms = {key: summary(value) * 1e3 for key, value in times.items()}
        header = f"{'forward ms, ' + label:24s}" + "".join(f"{names[s]:>12s}" for s in sides)
        print(header + (f"{'ours/best':>11s}" if len(sides) > 1 else ""))
        for model in NETS:
            row = f"{model:24s}" + "".join(f"{ms[(s, model)]:12.1f}" for s in sides)
            if len(sides) > 1:
                row += f"{ms[('ours', model)] / min(ms[(s, model)] for s in sides[1:]):11.2f}"
            print(row)
    print(f"(of {len(times[('ours', next(iter(NETS)))])} forwards per cell after a warm-up; the fastest run is the "
          f"one least disturbed by other work)")
    ok = True
    for side in sides[1:]:
        for model in NETS:
            ours = numpy.array(results[("ours", model)]["scores"])
            theirs = numpy.array(results[(side, model)]["scores"])
            d = float(numpy.abs(ours - theirs).max() / max(numpy.abs(theirs).max(), 1e-30))
            ok &= d < SCORE_RTOL
            print(f"  {model} scores vs {side}: max relative difference {d:.2e} "
                  f"({'ok' if d < SCORE_RTOL else 'MISMATCH'}, limit {SCORE_RTOL:g})")
    for model in NETS:
        print_profile(model, results[("ours", model)]["profile"])
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} on {os.cpu_count()} CPUs "
          f"(a load above the CPU count means other work shared the machine: compare ratios, not milliseconds)")
    return ok


def print_profile(model, profile):
    total = sum(profile.values())
    print(f"our profile, {model} (mean of {PROFILED} instrumented forwards, {total * 1e3:.1f} ms):")
    for kind, seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:24s} {seconds * 1e3:8.2f} ms {100 * seconds / total:5.1f}%")
    normalising = sum(profile.get(kind, 0) for kind in NORMALISING)
    print(f"  BatchNorm + Scale + ReLU: {100 * normalising / total:.1f}%; depthwise convolution: "
          f"{100 * profile.get('Convolution (depthwise)', 0) / total:.1f}%")


if __name__ == "__main__":
    main()

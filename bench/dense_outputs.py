"""Dense predictions three ways (FCN section 3.2 against 4.2), timed and their memory measured:

    python -m bench.dense_outputs                  # the demo's FCN geometry at 96 x 96: about a minute on 2 cores
    python -m bench.dense_outputs --vgg 64         # and VGG16's (the voc-fcn nets) at 64 x 64, without the f*f passes

- FCN-32s, FCN-16s, FCN-8s: one forward pass each; in-network bilinear upsampling makes the output dense (the
  skip nets the paper chose).
- shift-and-stitch: f*f = 1024 shifted inputs through FCN-32s up to score_fr (solver/shift_stitch.py).
- layerwise shift-and-stitch: stitched at each strided layer instead (the paper's efficient form).
- rarefied net: FCN-32s up to score_fr with every stride removed and the later filters dilated (netspec/rarefy.py).

Random weights. Each method runs in a child process of its own. Time: the median of --repeat runs after a warm-up
(a run of a second or more: that run alone). Memory: the child's peak resident memory above what it held before
the first run (the nets and their weights): activations, temporaries and the output. Not part of the test suite.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy

from demo import nets, pipeline, synthetic
from layers import Net
from netspec import io as netio
from netspec.rarefy import rarefy
from solver.shift_stitch import shift_and_stitch, shift_and_stitch_layerwise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_nets(size):
    c = pipeline.CONFIGS["default"]
    return {stage: nets.fcn(stage, None, c.widths, c.fc, pipeline._pool5_size(c.crop), synthetic.NUM_CLASSES, c.pad,
                            size) for stage in ("32s", "16s", "8s")}


def vgg_nets(size):
    out = {}
    for stage in ("32s", "16s", "8s"):
        param = netio.read_net(os.path.join(ROOT, "prototxt", f"voc-fcn{stage}", "deploy.prototxt"))
        for lp in param.layer:
            if lp.type == "Input":
                del lp.input_param.shape[:]
                lp.input_param.shape.add().dim.extend([1, 3, size, size])
        out[stage] = param
    return out


def random_weights(net, rng):
    """He-scaled normal weights, written in place (no weight-sized temporaries to raise the peak memory)."""
    for blobs in net.params.values():
        for b in blobs:
            fan_in = numpy.prod(b.shape[1:]) if b.data.ndim > 1 else 1
            rng.standard_normal(dtype=numpy.float32, out=b.data)
            b.data *= numpy.float32(numpy.sqrt(2 / fan_in))


METHODS = ("FCN-32s", "FCN-16s", "FCN-8s", "shift-and-stitch (1024 passes)", "layerwise shift-and-stitch",
           "rarefied net")


def method(name, params):
    """The function of the input that `name` runs, on the one net it needs (random weights, written in place, so
    that building leaves no peak above what the net holds)."""
    if name == "rarefied net":
        net = Net(rarefy(params["32s"], "score_fr"))
    else:
        net = Net(params["32s" if not name.startswith("FCN-") else name[4:]])
    random_weights(net, numpy.random.default_rng(1701))
    net.release_blobs = True                           # inference: activations freed once read (as infer does)
    if name.startswith("FCN-"):
        return lambda x: net.forward(data=x)["score"]
    if name == "rarefied net":
        return lambda x: net.forward(data=x)["score_fr"]
    stitch_fn = shift_and_stitch if name.startswith("shift") else shift_and_stitch_layerwise
    return lambda x: stitch_fn(net, "score_fr", x)


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def child(name, geometry, size, repeat):
    """Measure one method; print {seconds, memory_mb, shape} as JSON."""
    fn = method(name, (demo_nets if geometry == "demo" else vgg_nets)(size))
    x = numpy.random.default_rng(0).uniform(0, 255, (1, 3, size, size)).astype(numpy.float32)
    before = rss_mb()
    start = time.perf_counter()
    out = fn(x)
    times = [time.perf_counter() - start]
    if times[0] < 1:
        times = []                                     # that was the warm-up: first-use allocations, thread start
        while len(times) < repeat or sum(times) < 0.5:
            start = time.perf_counter()
            out = fn(x)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before      # Linux: KiB
    print(json.dumps({"seconds": statistics.median(times), "memory_mb": peak, "shape": list(out.shape)}))


def report(title, geometry, size, repeat, skip=()):
    print(f"\n{title}, {size} x {size} input, load average {os.getloadavg()[0]:.1f}")
    print("| method | time (s) | memory (MB) | output |\n|---|---|---|---|")
    for name in METHODS:
        if name in skip:
            continue
        done = subprocess.run([sys.executable, "-m", "bench.dense_outputs", "--child", name, geometry, str(size),
                               str(repeat)], cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stdout}{done.stderr}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {name} | {r['seconds']:.3g} | {r['memory_mb']:.0f} | {r['shape'][2]} x {r['shape'][3]} |",
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.dense_outputs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="input size for the demo's nets (default 96)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument("--vgg", type=int, default=None, metavar="SIZE", help="also VGG16's FCNs at this size")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "GEOMETRY", "SIZE", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, geometry, size, repeat = args.child
        return child(name, geometry, int(size), int(repeat))
    report("the demo's FCN geometry (widths 8-128, fc 256)", "demo", args.size, args.repeat)
    if args.vgg:
        report("VGG16's FCNs (voc-fcn32s/16s/8s deploy nets)", "vgg", args.vgg, args.repeat,
               skip=("shift-and-stitch (1024 passes)",))


if __name__ == "__main__":
    main()

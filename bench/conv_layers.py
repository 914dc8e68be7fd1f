"""Per-layer convolution microbenchmark: FCN-8s's VGG 3x3 layers (and fc6/fc7), each operation under each CPU
strategy that supports it, against PyTorch's (when installed), interleaved, on one process.

    python -m bench.conv_layers                     # 500x500 input, every layer, forward / data / weight grad
    python -m bench.conv_layers --size 256 --layers conv2_2,conv5_1 --repeats 5

For each layer and operation: the median wall time (ms) and process CPU time (ms, which a busy machine
disturbs less) of each strategy, '*' marking the dispatch's choice, and PyTorch's (channels_last) for scale;
the rate in direct-sum GFLOP/s of the chosen strategy. Use it to check the thresholds in layers/kernels/*.py
(uses_winograd, uses_winograd_grads, uses_taps) on the machine at hand.
"""
import argparse
import statistics
import time

import numpy

from bench.cpu_fcn8s import torch_installed
from layers.kernels import conv
from layers.kernels.geometry import ConvGeometry, conv_outsize, pool_outsize

OPS = {"forward": "f", "data_grad": "d", "weight_grad": "w"}


def fcn_layers(size):
    """(name, C, M, kernel, pad, input side) of FCN-8s's convolutions at an input of size x size (Caffe's
    pad 100 on conv1_1, ceil pooling)."""
    layers, side = [], size
    blocks = [(("conv1_1", 3, 64), ("conv1_2", 64, 64)), (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
              (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)),
              (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)),
              (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512))]
    for block in blocks:
        for name, c, m in block:
            pad = 100 if name == "conv1_1" else 1
            layers.append((name, c, m, 3, pad, side))
            side = conv_outsize(side, 3, 1, pad)
        side = pool_outsize(side, 2, 2, 0)
    layers.append(("fc6", 512, 4096, 7, 0, side))
    layers.append(("fc7", 4096, 4096, 1, 0, conv_outsize(side, 7, 1, 0)))
    return layers


def timed(fn, runs):
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.conv_layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--layers", default="", help="comma-separated layer names (default: all)")
    parser.add_argument("--ops", default="forward,data_grad,weight_grad")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.layers.split(",")))
    torch = None
    if torch_installed():
        import torch
    rng = numpy.random.default_rng(0)
    print(f"FCN-8s convolutions at {args.size}x{args.size}: median wall / CPU ms over {args.repeats} interleaved "
          f"rounds; * = the dispatch's choice")
    for name, c, m, k, pad, side in fcn_layers(args.size):
        if wanted and name not in wanted:
            continue
        geom = ConvGeometry((k, k), (1, 1), (pad, pad), (1, 1), 1)
        out = conv_outsize(side, k, 1, pad)
        x = rng.standard_normal((1, c, side, side), dtype=numpy.float32)
        w = rng.standard_normal((m, c, k, k), dtype=numpy.float32) * numpy.float32(numpy.sqrt(2 / (c * k * k)))
        y = numpy.empty((1, m, out, out), numpy.float32)
        dy = rng.standard_normal(y.shape, dtype=numpy.float32)
        dx, dw = numpy.empty_like(x), numpy.zeros_like(w)
        flops = 2 * m * c * k * k * out * out
        for op in args.ops.split(","):
            operands = {"forward": (x, w, y), "data_grad": (dx, w, dy), "weight_grad": (x, dw, dy)}[op]
            chosen = conv.choose(op, geom, *operands)
            runs = {}
            for s in conv.STRATEGIES:
                if s == "winograd_gpu" or not conv.strategy_module(s).supports(op, geom, *operands):
                    continue
                if s == "im2col_gemm" and chosen != s:
                    continue                            # the reference: whole-image columns, slow and large
                runs[s] = {"forward": lambda s=s: conv.forward(x, w, None, y, geom, s),
                           "data_grad": lambda s=s: conv.data_grad(dy, w, dx, geom, s),
                           "weight_grad": lambda s=s: conv.weight_grad(x, dy, dw, geom, s)}[op]
            if torch is not None:
                tx, tw, tdy = (torch.from_numpy(a).contiguous(memory_format=torch.channels_last) for a in (x, w, dy))
                mask = {"forward": None, "data_grad": [True, False, False], "weight_grad": [False, True, False]}[op]
                runs["torch"] = (lambda: torch.nn.functional.conv2d(tx, tw, None, 1, pad)) if mask is None else (
                    lambda mask=mask: torch.ops.aten.convolution_backward(tdy, tx, tw, None, [1, 1], [pad, pad],
                                                                         [1, 1], False, [0, 0], 1, mask))
            results = {s: ([], []) for s in runs}
            for _ in range(args.repeats):
                for s, fn in runs.items():
                    if torch is not None:
                        with torch.no_grad():
                            walls, cpus = timed(fn, 1)
                    else:
                        walls, cpus = timed(fn, 1)
                    results[s][0].extend(walls)
                    results[s][1].extend(cpus)
            cells = []
            for s, (walls, cpus) in results.items():
                mark = "*" if s == chosen else ""
                cells.append(f"{mark}{s} {statistics.median(walls) * 1e3:.0f}/{statistics.median(cpus) * 1e3:.0f}")
            rate = flops / statistics.median(results[chosen][0]) / 1e9
            print(f"{name:8s} {OPS[op]} {flops / 1e9:5.1f} GFLOP {rate:5.0f} GFLOP/s  " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()

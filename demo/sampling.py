"""python -m demo.sampling [--out DIR] [--rates 1 0.5 0.25] [--iters N] [--every K] [--size S] [--seed S] [--gpu N]

The paper's Figure 5 on the demo's data: FCN-32s trained from the convolutionalized classifier with loss sampling
at each rate p (layers/data/loss_sampling.py: each 32 x 32 loss cell kept with probability p, batches 1/p times
larger so that the expected number of cells per iteration stays the same), the same number of iterations each.
Every K iterations the whole val set's loss (unsampled) is measured; training time (wall and this process's CPU
time) excludes these evaluations.
Writes DIR/sampling.png (val loss against iterations, images seen and seconds), DIR/sampling.json and
DIR/sampling.md. Reuses DIR's data and classifier from `python -m demo`, or makes them first.
"""
import argparse
import json
import os
import sys
import time

import numpy

from demo import pipeline
from demo.plot import line_chart


def prepare(paths, config, seed, device, log):
    """The data and the convolutionalized classifier FCN-32s starts from: DIR's, or made now as the demo does."""
    if os.path.isfile(paths.model("classifier-conv")) and os.path.isdir(paths.data):
        log(f"using {paths.data} and {paths.model('classifier-conv')} (made by python -m demo)")
        return
    os.makedirs(paths.models, exist_ok=True)          # the classifier's snapshots go there
    pipeline.make_data(paths, config, seed, log)
    pipeline.write_nets(paths.nets, paths.out, config, seed)
    weights, _, _ = pipeline.pretrain(paths, config, device, log)
    pipeline.convolutionalize(paths, weights, log)


def val_loss(solver):
    """The mean loss of the solver's val net over the whole val split (its data layer reads it in order)."""
    net = solver.test_nets[0]
    solver.share_weights(net)
    return float(numpy.mean([float(pipeline._cpu(net.forward()["loss"])) for _ in range(solver.param.test_iter[0])]))


def train_at(rate, paths, config, seed, device, iters, every, log):
    """Train FCN-32s with loss sampling at `rate` (1: none); returns its curve, a list of dicts."""
    import logging
    from solver import get_solver
    from solver.log import get_logger
    from weights import surgery
    folder = os.path.join(paths.out, "sampling", f"p{rate:g}")
    pipeline.write_nets(folder, paths.out, config, seed, sample=None if rate == 1 else rate)
    batch = config.batch if rate == 1 else pipeline.sampled_batch(config.batch, rate)
    solver_log = get_logger()
    level = solver_log.level
    solver_log.setLevel(logging.WARNING)
    try:
        solver = get_solver(os.path.join(folder, "demo-fcn32s", "solver.prototxt"), device=device)
        surgery.handoff(solver.net, paths.model("classifier-conv"))
        curve, seconds, cpu_seconds = [], 0.0, 0.0
        while True:
            curve.append({"iteration": solver.iter, "images": solver.iter * batch, "seconds": seconds,
                          "cpu_seconds": cpu_seconds, "val_loss": val_loss(solver),
                          "train_loss": solver.smoothed_loss})
            log(f"  p = {rate:g} (batch {batch}): iter {solver.iter}, {seconds:.0f} s, val loss "
                f"{curve[-1]['val_loss']:.4f}")
            if solver.iter >= iters:
                return curve
            start, cpu_start = time.perf_counter(), time.process_time()
            solver.step(min(every, iters - solver.iter))
            seconds += time.perf_counter() - start
            cpu_seconds += time.process_time() - cpu_start      # what other work on the machine does not inflate
    finally:
        solver_log.setLevel(level)


def write_results(paths, curves, rates):
    """sampling.png, sampling.json and sampling.md under DIR; returns the markdown table."""
    names = {rate: f"p = {rate:g}" for rate in rates}
    panels = [(title, x_label, {names[r]: [(p[key], p["val_loss"]) for p in curves[r]] for r in rates})
              for title, x_label, key in (("against iterations", "iterations", "iteration"),
                                          ("against images seen", "images", "images"),
                                          ("against training time", "seconds", "seconds"))]
    line_chart(panels, os.path.join(paths.out, "sampling.png"), y_label="val loss")
    with open(os.path.join(paths.out, "sampling.json"), "w") as f:
        json.dump({names[r]: curves[r] for r in rates}, f, indent=2)
    lines = ["| p | batch | val loss at start | val loss at the end | images seen | training time | CPU time |",
             "|---" * 7 + "|"]
    for r in rates:
        first, last = curves[r][0], curves[r][-1]
        batch = last["images"] // max(1, last["iteration"])
        lines.append(f"| {r:g} | {batch} | {first['val_loss']:.3f} | {last['val_loss']:.3f} | {last['images']} | "
                     f"{last['seconds']:.0f} s | {last['cpu_seconds']:.0f} s |")
    table = "\n".join(lines)
    with open(os.path.join(paths.out, "sampling.md"), "w") as f:
        f.write("# Loss sampling (section 3.4, Figure 5) on the demo's data\n\n" + table + "\n\n![](sampling.png)\n")
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m demo.sampling", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="the demo's output folder (default: demo_out)")
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 0.5, 0.25], help="rates p (default 1 0.5 0.25)")
    parser.add_argument("--iters", type=int, default=300, help="iterations at each rate (default 300)")
    parser.add_argument("--every", type=int, default=25, help="iterations between val losses (default 25)")
    parser.add_argument("--size", default="default", choices=sorted(pipeline.CONFIGS), help="the demo's size")
    parser.add_argument("--seed", type=int, default=0, help="the demo's seed (default 0)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: the CPU)")
    args = parser.parse_args(argv)
    if any(not 0 < r <= 1 for r in args.rates):
        parser.error(f"--rates are fractions of loss cells kept, in (0, 1]; got {args.rates}")
    config = pipeline.CONFIGS[args.size]
    paths = pipeline.Paths(args.out)
    log = pipeline.Log()
    try:
        prepare(paths, config, args.seed, args.gpu, log)
        curves = {rate: train_at(rate, paths, config, args.seed, args.gpu, args.iters, args.every, log)
                  for rate in args.rates}
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"python -m demo.sampling: error: {e}", file=sys.stderr)
        return 1
    log("loss sampling, val loss (whole val split):\n" + write_results(paths, curves, args.rates))
    log(f"plot: {os.path.join(args.out, 'sampling.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

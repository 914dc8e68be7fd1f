"""python -m demo [--out DIR] [--size tiny|default|large] [--gpu N] [--seed S] [--stages ...] [--sample P] [--quiet]

The FCN paper's staged pipeline end to end on synthetic data made here (no downloads): a classifier pretrained
with `python -m solver`, convolutionalized, then FCN-32s-fixed, FCN-32s, FCN-16s and FCN-8s, each scored on val.
Writes DIR/results.md, DIR/results.json and DIR/figures/*.png (default DIR: ./demo_out), learning curves (each
stage's training loss and val mean IU over iterations) among them.

`--write-nets DIR` only writes the default configuration's nets (DIR/demo-*/{train,val,solver}.prototxt, data
paths under demo_out/) and exits: prototxt/demo/ is made this way (python -m demo --write-nets prototxt/demo).
"""
import argparse
import os
import sys

from demo import nets, pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--size", default="default", choices=sorted(pipeline.CONFIGS),
                        help="tiny (the test's, about 1 minute), default (about 7.6 minutes of CPU time), "
                             "large (for a GPU: about 4 minutes on an H200)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="data, initialisation and sampling seed (default 0)")
    parser.add_argument("--stages", nargs="+", default=list(nets.STAGES), choices=nets.STAGES,
                        help="FCN stages to run, in order (each needs the one it starts from)")
    parser.add_argument("--sample", type=float, default=None, metavar="P",
                        help="train the FCN stages with loss sampling: keep a fraction P of the 32 x 32 loss cells "
                             "of each image, in batches 1/P times larger (the paper's section 3.4)")
    parser.add_argument("--quiet", action="store_true", help="no per-iteration progress lines")
    parser.add_argument("--write-nets", metavar="DIR", help="write the default nets under DIR and exit")
    args = parser.parse_args(argv)
    if args.sample is not None and not 0 < args.sample <= 1:
        parser.error(f"--sample P: the fraction of loss cells kept, in (0, 1]; got {args.sample}")
    if args.write_nets:
        for folder in pipeline.write_nets(args.write_nets, "demo_out", pipeline.CONFIGS["default"], seed=0).values():
            print(folder)
        return 0
    order = list(nets.STAGES)
    paths = pipeline.Paths(args.out)
    for stage in args.stages:
        need = pipeline.INIT_FROM[stage]
        if need.startswith("fcn") and need[3:] not in args.stages and not os.path.isfile(paths.model(need)):
            parser.error(f"stage {stage} starts from {paths.model(need)}, which does not exist: run {need[3:]} too")
    try:
        pipeline.run(args.out, args.size, args.seed, args.gpu, sorted(args.stages, key=order.index), args.quiet,
                     sample=args.sample)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"python -m demo: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

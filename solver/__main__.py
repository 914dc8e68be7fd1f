"""python -m solver SOLVER.prototxt [--weights W.caffemodel[,W2]] [--snapshot S.solverstate] [--gpu N]
   python -m solver time NET.prototxt [--iterations N] [--gpu N] [--phase TRAIN|TEST]   (solver/timing.py)

Caffe's `caffe train`: builds the solver the prototxt's `type` names, finetunes from --weights or resumes from
--snapshot, and solves to max_iter. Ctrl-C (SIGINT) stops after the current iteration and writes a snapshot;
SIGHUP writes a snapshot and goes on (Caffe's defaults; see --sigint_effect/--sighup_effect).
Exit status: 0 when training ends or is stopped, 1 on an error or a diverged (NaN) loss.
"""
import argparse
import sys

from netspec.errors import CaffeFormatError
from solver import DivergedError, SignalHandler, get_solver, timing
from solver.log import get_logger
from solver.signals import EFFECTS


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m solver", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solver", help="the solver .prototxt (relative paths in it resolve against its folder)")
    parser.add_argument("--weights", help="comma-separated .caffemodel(.h5) files to finetune from "
                                          "(copied by layer name into the train and test nets)")
    parser.add_argument("--snapshot", help="a .solverstate(.h5) to resume training from")
    parser.add_argument("--gpu", help="GPU id to train on (without CUDA: the CPU, with a message); "
                                      "default: the CPU, or the solver's solver_mode: GPU / device_id")
    parser.add_argument("--sigint_effect", default="stop", choices=EFFECTS, help="on SIGINT (default: stop)")
    parser.add_argument("--sighup_effect", default="snapshot", choices=EFFECTS,
                        help="on SIGHUP (default: snapshot)")
    args = parser.parse_args(argv)
    if args.weights and args.snapshot:
        parser.error("give --snapshot to resume training or --weights to finetune, but not both")
    return args


def device_of(args, param):
    if args.gpu is not None:
        if args.gpu == "all":
            get_logger().warning("multi-GPU training is not supported; using GPU 0")
            return 0
        try:
            return int(args.gpu)
        except ValueError:
            raise ValueError(f"--gpu takes a GPU id, got {args.gpu!r}") from None
    from netspec import caffe_pb2
    # as `caffe train`: without --gpu, an explicit solver_mode: GPU in the solver picks device_id
    if param.HasField("solver_mode") and param.solver_mode == caffe_pb2.SolverParameter.GPU:
        return param.device_id
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["time"]:                        # Caffe's `caffe time`
        return _command(lambda: timing.main(argv[1:]))
    args = parse_args(argv)
    return _command(lambda: train(args))


def train(args):
    solver = get_solver(args.solver)
    device = device_of(args, solver.param)
    if device is not None:
        solver.to_device(device)
    if args.weights:
        for path in args.weights.split(","):
            solver.copy_weights(path)
    with SignalHandler(args.sigint_effect, args.sighup_effect) as handler:
        solver.set_action_function(handler.check)
        solver.solve(args.snapshot)
    return 0


def _command(run):
    """Run a command: its exit status, errors logged as one line."""
    log = get_logger()
    try:
        return run()
    except DivergedError:
        return 1                                    # already logged, with its hint
    except (FileNotFoundError, CaffeFormatError, ValueError, OSError) as e:
        log.error(str(e))
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; the snapshots written so far are intact")
        return 130


if __name__ == "__main__":
    sys.exit(main())

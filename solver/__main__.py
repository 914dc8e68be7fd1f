"""python -m solver SOLVER.prototxt [--weights W.caffemodel[,W2]] [--snapshot S.solverstate] [--gpu N|N,M,..|all]
   python -m solver time NET.prototxt [--iterations N] [--gpu N] [--phase TRAIN|TEST]   (solver/timing.py)

Caffe's `caffe train`: builds the solver the prototxt's `type` names, finetunes from --weights or resumes from
--snapshot, and solves to max_iter. Ctrl-C (SIGINT) stops after the current iteration and writes a snapshot;
SIGHUP writes a snapshot and goes on (Caffe's defaults; see --sigint_effect/--sighup_effect).
Data-parallel: `mpiexec -n N python -m solver ...` trains one model with N processes (MPI; mpiexec's hostfile for
several machines), and `--gpu 0,1,2,3` (or `--gpu all`) starts one process per GPU, all-reducing with NCCL.
Exit status: 0 when training ends or is stopped, 1 on an error or a diverged (NaN) loss.
"""
import argparse
import logging
import os
import sys

from netspec.errors import CaffeFormatError
from solver import DivergedError, SignalHandler, get_solver, launch, parallel, timing
from solver.log import get_logger
from solver.signals import EFFECTS


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m solver", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("solver", help="the solver .prototxt (relative paths in it resolve against its folder)")
    parser.add_argument("--weights", help="comma-separated .caffemodel(.h5) files to finetune from "
                                          "(copied by layer name into the train and test nets)")
    parser.add_argument("--snapshot", help="a .solverstate(.h5) to resume training from")
    parser.add_argument("--gpu", help="GPU id to train on (without CUDA: the CPU, with a message), or several "
                                      "(0,1,2,3 or all: one process per GPU, NCCL); default: the CPU, or the "
                                      "solver's solver_mode: GPU / device_id")
    parser.add_argument("--timeout", type=float, default=parallel.DEFAULT_TIMEOUT,
                        help="data-parallel: seconds a rank waits for the others at one iteration before it stops "
                             "the run naming the ranks that did not come (died or hung); default %(default)g")
    parser.add_argument("--sigint_effect", default="stop", choices=EFFECTS, help="on SIGINT (default: stop)")
    parser.add_argument("--sighup_effect", default="snapshot", choices=EFFECTS,
                        help="on SIGHUP (default: snapshot)")
    args = parser.parse_args(argv)
    if args.weights and args.snapshot:
        parser.error("give --snapshot to resume training or --weights to finetune, but not both")
    return args


def device_of(args, param):
    if args.gpu is not None:
        gpus = launch.gpu_list(args.gpu)
        if len(gpus) > 1 or launch.RANK_ENV in os.environ:       # one of the processes launch.main started
            return gpus[int(os.environ.get(launch.RANK_ENV, parallel.launched_rank()))]
        if args.gpu == "all":
            return gpus[0]
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
    log = get_logger()
    if launch.wants_processes(args.gpu):            # --gpu 0,1,..: start one process per GPU and wait for them
        return launch.main(argv, args)
    comm = None
    try:
        comm = launch.communicator(args)
        if comm.size > 1 and comm.rank:
            quiet_rank(comm.rank)
        solver = get_solver(args.solver)
        device = device_of(args, solver.param)
        if device is not None:
            solver.to_device(device)
        if args.weights:
            for path in args.weights.split(","):
                solver.copy_weights(path)
        if comm.size > 1:
            parallel.attach(solver, comm)
            announce(solver, comm)
        with SignalHandler(args.sigint_effect, args.sighup_effect) as handler:
            solver.set_action_function(handler.check)
            solver.solve(args.snapshot)
    except DivergedError:
        return 1                                    # already logged, with its hint
    except parallel.RankError as e:
        log.error(str(e))
        comm.abort(1)                               # the others may be waiting in MPI: end them all
        return 1
    except (FileNotFoundError, CaffeFormatError, ValueError, OSError, RuntimeError) as e:
        if str(e) != parallel.NO_MPI or parallel.launched_rank() == 0:     # that one once, not once per process
            log.error(str(e))
        return fail(comm, 1)
    except KeyboardInterrupt:
        log.error("interrupted; the snapshots written so far are intact")
        return fail(comm, 130)
    return 0


def _command(run):
    """Run a one-process command (`time`): its exit status, errors logged as one line."""
    log = get_logger()
    try:
        return run()
    except (FileNotFoundError, CaffeFormatError, ValueError, OSError) as e:
        log.error(str(e))
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def fail(comm, code):
    """An error on one rank of a group ends every rank (the others would wait for it until the timeout)."""
    if comm is not None and comm.size > 1:
        comm.abort(code)
    return code


def quiet_rank(rank):
    """Caffe's LOG_IF(INFO, root_solver()): ranks other than 0 log warnings and errors only, named by rank."""
    logger = get_logger()
    logger.setLevel(logging.WARNING)

    class RankPrefix(logging.Filter):
        def filter(self, record):
            record.msg = f"rank {rank}: {record.msg}"
            return True

    logger.addFilter(RankPrefix())


def announce(solver, comm):
    get_logger().info(f"Data-parallel training on {comm.size} ranks ({comm.name}): each iteration averages the "
                      f"gradients of {comm.size} x {solver.param.iter_size} (iter_size) batches; rank 0 logs, tests "
                      f"and snapshots; {'; '.join(comm.describe(r) for r in range(comm.size))}")


if __name__ == "__main__":
    sys.exit(main())

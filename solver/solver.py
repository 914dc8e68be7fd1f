"""The Solver: Caffe's training loop, testing and log (cf. caffe/solver.cpp).

Solver(param, device=None) builds the train net and the test nets from a SolverParameter (a path, prototxt text or a
message; solver/nets.py) and runs Caffe's Step/Solve loop: clear diffs, test every test_interval, iter_size
forward/backward passes, display with average_loss smoothing, apply the update (solver/update.py, with the rule of
the solver's type from solver/sgd.py), snapshot every `snapshot` iterations (solver/snapshot.py). SGDSolver,
NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver and AdamSolver are the six types.

Relative paths in the solver (net files, weights, snapshot_prefix) and in its nets (HDF5Data sources) are looked for
in the solver file's folder first, then in the working directory. Snapshots are written atomically.

In a data-parallel group (solver.parallel, set by solver/parallel.py) the loop agrees with the other ranks once per
iteration on the loss and the action, tests and snapshots on rank 0 only, and the gradients are all-reduced at
'gradients_ready'.
"""
import collections
import math
import os
import time
from typing import List, Optional, Tuple, Union

import numpy

from layers import Net, backend, rng
from netspec import caffe_pb2, io as netio, paths
from solver import lr_policy, nets, snapshot
from solver.log import g, get_logger
from solver.sgd import UPDATES

log = get_logger()

NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"     # Caffe's SolverAction
EVENTS = ("start", "gradients_ready", "step", "test")


class DivergedError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped without writing the bad weights."""


class Solver:
    type = None                  # Caffe's solver type string, set by each subclass (a key of solver.sgd.UPDATES)
    net_class = Net              # what the train and test nets are built as
    paths_beside_solver = True   # relative paths try the solver's folder first (False: the working directory only)

    def __init__(self, param: Union[str, os.PathLike, caffe_pb2.SolverParameter], device=None):
        if self.type not in UPDATES:
            raise TypeError(f"{type(self).__name__} has no update rule: build one of the solver types "
                            f"({', '.join(t + 'Solver' for t in UPDATES)}) or use solver.get_solver")
        self.source = paths.source_path(param)
        self.base_dir = paths.folder_of(self.source) if self.paths_beside_solver else None
        try:
            self.param = netio.read_solver(param)
        except FileNotFoundError:
            raise FileNotFoundError(f"solver file '{param}' not found (looked for {os.path.abspath(param)})") \
                from None
        self.where = self.source or "solver"
        self._check_param()
        if self.type != self.param.type:
            log.warning(f"{self.where} asks for solver type \"{self.param.type}\", but a {type(self).__name__} "
                        f"(\"{self.type}\") is being built; use solver.get_solver to follow the file")
        if self.param.random_seed >= 0:
            rng.seed(self.param.random_seed)
        log.info(f"Initializing solver from parameters:\n{netio.to_text(self.param).rstrip()}")
        self.snapshot_prefix_written, self.snapshot_prefix_path = snapshot.prefix(self.param, self.source,
                                                                                  self.base_dir)
        if self.param.snapshot > 0:
            snapshot.check_folder(self.snapshot_prefix_path, self.param, self.where)
        snapshot.remove_abandoned(self.snapshot_prefix_path)
        self.net = nets.train_net(self.param, self.where, self.base_dir, self.net_class)
        self.test_nets = nets.test_nets(self.param, self.where, self.base_dir, self.net_class)
        for path in self.param.weights:             # the solver's own `weights` field (newer Caffe)
            self.copy_weights(nets.find(path, "weights file", self.where, self.base_dir))
        self.update = UPDATES[self.type](self.param, self.net)     # the rule, with its history
        self.iter = 0
        self.current_step = 0
        self.requested_early_exit = False
        self.last_snapshot = None                   # (iteration, caffemodel path, solverstate path)
        self._action_function = None
        self._callbacks = {event: [] for event in EVENTS}
        self.losses, self.smoothed_loss = [], 0.0
        self.batches_read = [0] * (1 + len(self.test_nets))   # forwards run by the solver: train net, test nets
        self.device = "cpu"
        self.parallel = None                        # solver.parallel.Parallel: this solver's part in a group
        self.solver_count = 1                       # ranks training together (Caffe::solver_count)
        self.to_device(device)

    def _check_param(self):
        p = self.param
        if p.average_loss < 1:
            raise ValueError(f"{self.where}: average_loss must be at least 1, got {p.average_loss}")
        if p.iter_size < 1:
            raise ValueError(f"{self.where}: iter_size must be at least 1, got {p.iter_size}")
        if p.regularization_type not in ("L1", "L2"):
            raise ValueError(f"{self.where}: unknown regularization_type \"{p.regularization_type}\"; "
                             f"use \"L2\" or \"L1\"")
        try:
            lr_policy.check(p)
            UPDATES[self.type].check(p)
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None

    def copy_weights(self, path: str) -> None:
        """Finetune from `path` (.caffemodel or .caffemodel.h5): copied into the train and test nets by layer name."""
        nets.copy_weights(path, [self.net] + self.test_nets)

    def share_weights(self, net: Net) -> None:
        """Make `net` use the train net's current weights (pycaffe's net.share_with(solver.net))."""
        nets.share_trained_layers(net, self.net)

    def to_device(self, device) -> "Solver":
        """Move every net and the solver's history to `device` ('cpu', 'gpu', 'gpu:N', an id; None = CPU)."""
        kind, device_id = backend.resolve_device(device)
        if kind == "gpu":
            backend.use_device(device_id)               # temporaries go where the blobs are (caffe.set_device)
        for net in [self.net] + self.test_nets:
            net.to_gpu(device_id) if kind == "gpu" else net.to_cpu()
        self.device = "cpu" if kind == "cpu" else f"gpu:{device_id}"
        if kind == "gpu" and self.param.random_seed >= 0:
            rng.seed_device(self.param.random_seed, device_id)
        self.update.to_device()
        return self

    @property
    def history(self) -> list:
        """The update rule's history arrays, as Caffe's history_ (and the .solverstate) lays them out."""
        return self.update.history

    # ------------------------------------------------------------------ hooks
    def add_callback(self, fn, event="step"):
        """Call fn at `event`: 'start' (before an iteration's forward/backward), 'gradients_ready' (before the
        update), 'step' (after the update, solver.iter already counting it), all as fn(solver); and 'test' (after
        each test net's evaluation) as fn(solver, test_net_id, scores), scores = {output name: mean value}.

        pycaffe's form add_callback(on_start, on_gradients_ready) takes two functions of no arguments."""
        if callable(event):
            on_start, on_gradients_ready = fn, event
            self._callbacks["start"].append(lambda solver: on_start())
            self._callbacks["gradients_ready"].append(lambda solver: on_gradients_ready())
            return fn
        if event not in EVENTS:
            raise ValueError(f"unknown callback event {event!r}; use one of {', '.join(EVENTS)}")
        self._callbacks[event].append(fn)
        return fn

    def _run_callbacks(self, event, *args):
        for fn in self._callbacks[event]:
            fn(self, *args)

    def set_action_function(self, fn):
        """fn() -> 'stop', 'snapshot' or 'none', polled after every iteration (Caffe's SetActionFunction)."""
        self._action_function = fn

    def _requested_action(self):
        return self._action_function() if self._action_function else NONE

    # ------------------------------------------------------------------ the loop
    def solve(self, resume_file: Optional[str] = None) -> None:
        """Caffe's Solve: optionally restore, step to max_iter, snapshot at the end, final display and test."""
        if self.param.snapshot_after_train:          # the last snapshot must not fail after the whole run
            snapshot.check_folder(self.snapshot_prefix_path, self.param, self.where)
        log.info(f"Solving {self.net.name}")
        log.info(f"Learning Rate Policy: {self.param.lr_policy}")
        self.requested_early_exit = False
        if resume_file:
            log.info(f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        start_iter, started = self.iter, time.perf_counter()
        self.step(self.param.max_iter - self.iter)
        if self.iter > start_iter:
            seconds = time.perf_counter() - started
            log.info(f"{self.iter - start_iter} iterations in {g(seconds)}s "
                     f"({g(seconds / (self.iter - start_iter))}s/iter)")
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            log.info("Optimization stopped early.")
            return
        # the final pass only displays: a forward of the train net at the final weights, then the tests
        if p.display and self.iter % p.display == 0:
            self.net.forward()
            self.batches_read[0] += 1
            self._update_smoothed_loss(self.net.loss, start_iter)
            log.info(f"Iteration {self.iter}, loss = {g(self.smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def step(self, iters: int) -> None:
        """Caffe's Step: run `iters` iterations (testing, displaying and snapshotting as the solver says)."""
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + int(iters)
        self.losses, self.smoothed_loss = [], 0.0
        timer, iterations_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
                if self.requested_early_exit:
                    break
            self._run_callbacks("start")
            display = p.display and self.iter % p.display == 0
            loss = 0.0
            for _ in range(p.iter_size):
                loss += self.net.forward_backward()
                self.batches_read[0] += 1
            loss /= p.iter_size
            request = None
            if self.parallel is not None:           # every rank: the mean loss, and one action for all
                loss, request = self.parallel.agree(loss, self._requested_action())
            if not math.isfinite(loss):
                self._diverged(loss)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = time.perf_counter() - timer
                per_s = (self.iter - iterations_last) / (lapse or 1)
                log.info(f"Iteration {self.iter} ({g(per_s)} iter/s, {g(lapse)}s/{p.display} iters), "
                         f"loss = {g(self.smoothed_loss)}")
                timer, iterations_last = time.perf_counter(), self.iter
                self._log_outputs(self.net, "Train")
            self._run_callbacks("gradients_ready")
            self.apply_update()
            self.iter += 1
            self._run_callbacks("step")
            if request is None:
                request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request == SNAPSHOT:
                self.snapshot()
            if request == STOP:
                self.requested_early_exit = True
                break

    def _update_smoothed_loss(self, loss, start_iter):
        average_loss = self.param.average_loss
        if len(self.losses) < average_loss:
            self.losses.append(loss)
            self.smoothed_loss = (self.smoothed_loss * (len(self.losses) - 1) + loss) / len(self.losses)
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self.losses[idx]) / average_loss
            self.losses[idx] = loss

    def _diverged(self, loss):
        rate = self.learning_rate()[0]
        where = (f"the last good snapshot, iteration {self.last_snapshot[0]}, is {self.last_snapshot[2]}"
                 if self.last_snapshot else "no snapshot was written in this run")
        message = (f"Iteration {self.iter}: the loss is {loss} (not finite), so training stopped without saving "
                   f"these weights; {where}. At lr = {g(rate)} the updates probably blew up: with a loss summed "
                   f"over pixels (SoftmaxWithLoss normalize: false, as FCN trains) the learning rate must be tiny "
                   f"(FCN uses base_lr 1e-10 to 1e-14 with momentum 0.99); lower base_lr, or check the data.")
        log.error(message)
        raise DivergedError(message)

    def _log_outputs(self, net, kind, values=None):
        """Caffe's '    Train net output #k: name = v (* w = w*v loss)' lines, one per output element."""
        weights = net.blob_loss_weights
        index = 0
        for name in net.outputs:
            data = values[name] if values is not None else numpy.ravel(backend.to_cpu(net.blobs[name].data))
            for v in numpy.ravel(data):
                v = float(v)
                weight = weights.get(name, 0)
                extra = f" (* {g(weight)} = {g(weight * v)} loss)" if weight else ""
                log.info(f"    {kind} net output #{index}: {name} = {g(v)}{extra}")
                index += 1

    # ------------------------------------------------------------------ testing
    def test_all(self) -> List[dict]:
        """Evaluate every test net; returns a list of {output name: mean value (array)} per test net."""
        results = []
        for test_net_id in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(test_net_id))
        return results

    def test(self, test_net_id: int = 0) -> Optional[dict]:
        """Caffe's Test: test_iter forwards of test net #id at the train net's weights; means of its outputs."""
        log.info(f"Iteration {self.iter}, Testing net (#{test_net_id})")
        net = self.test_nets[test_net_id]
        self.share_weights(net)
        iters = self.param.test_iter[test_net_id]
        sums, loss = collections.OrderedDict(), 0.0
        for _ in range(iters):
            # in a group, requests wait for the next control step (every rank acts on them together)
            request = self._requested_action() if self.parallel is None else NONE
            if self.parallel is not None:
                self.parallel.keepalive()
            while request != NONE:
                if request == SNAPSHOT:
                    self.snapshot()
                elif request == STOP:
                    self.requested_early_exit = True
                request = self._requested_action()
            if self.requested_early_exit:
                log.info("Test interrupted.")
                return None
            outputs = net.forward()
            self.batches_read[1 + test_net_id] += 1
            loss += net.loss
            for name, data in outputs.items():          # summed where the outputs live: read once, at the end
                value = data.astype(numpy.float64)
                sums[name] = sums[name] + value if name in sums else value
        if self.param.test_compute_loss:
            log.info(f"Test loss: {g(loss / iters)}")
        scores = collections.OrderedDict((name, numpy.asarray(backend.to_cpu(s)) / iters) for name, s in sums.items())
        self._log_outputs(net, "Test", scores)
        self._run_callbacks("test", test_net_id, scores)
        return scores

    # ------------------------------------------------------------------ the update
    def learning_rate(self) -> Tuple[float, int]:
        """(rate, current_step) for the current iteration, as GetLearningRate computes it."""
        return lr_policy.learning_rate(self.param, self.iter, self.current_step)

    def apply_update(self) -> None:
        """Caffe's ApplyUpdate: clip, then per param normalize, regularize, compute the update; then w -= update."""
        rate, self.current_step = self.learning_rate()
        if self.param.display and self.iter % self.param.display == 0:
            log.info(f"Iteration {self.iter}, lr = {g(rate)}")
        self.update.apply(rate, self.iter)

    def grad_l2norm(self) -> float:
        """The global L2 norm of the learnable params' diffs (what clip_gradients compares against)."""
        return self.update.grad_l2norm()

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Tuple[str, str]:
        """Write <prefix>_iter_N.caffemodel and .solverstate (.caffemodel.h5 / .solverstate.h5 for HDF5)."""
        if self.parallel is not None:
            if not self.parallel.is_root:
                return None                         # Caffe: the root solver alone snapshots
            self.parallel.keepalive()
        model_path, state_path = snapshot.write(self)
        self.last_snapshot = (self.iter, model_path, state_path)
        return model_path, state_path

    def restore(self, state_file: Union[str, os.PathLike]) -> "Solver":
        """Continue from a .solverstate (binary or HDF5): iteration, lr step, history and the learned weights.

        Data layers that can (HDF5Data) skip what the run had read, so a resumed run sees the batches an
        uninterrupted one would have seen.
        """
        snapshot.restore(self, state_file)
        return self

    def __repr__(self):
        return f"<{type(self).__name__} ({self.type}) on '{self.net.name}', iter {self.iter}>"


class SGDSolver(Solver):
    """Stochastic gradient descent with momentum (solver.sgd.SGD)."""
    type = "SGD"


class NesterovSolver(Solver):
    """Nesterov's accelerated gradient (solver.sgd.Nesterov)."""
    type = "Nesterov"


class AdaGradSolver(Solver):
    """AdaGrad (solver.sgd.AdaGrad)."""
    type = "AdaGrad"


class RMSPropSolver(Solver):
    """RMSProp (solver.sgd.RMSProp)."""
    type = "RMSProp"


class AdaDeltaSolver(Solver):
    """AdaDelta (solver.sgd.AdaDelta)."""
    type = "AdaDelta"


class AdamSolver(Solver):
    """Adam (solver.sgd.Adam)."""
    type = "Adam"


SOLVERS = {cls.type: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                     AdamSolver)}

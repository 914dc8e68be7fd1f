"""The Solver: Caffe's training loop (cf. caffe/solver.cpp and sgd_solver.cpp), without the update rule.

Solver(param, device=None) builds the train net and the test nets from a SolverParameter (a path, prototxt text or a
message) and runs Caffe's Step/Solve loop: clear diffs, test every test_interval, iter_size forward/backward passes,
display with average_loss smoothing, ApplyUpdate (clip, normalize, regularize, compute the update, apply), snapshot
every `snapshot` iterations. Subclasses in solver/sgd.py give ComputeUpdateValue and the history they keep.

Relative paths in the solver (net files, weights, snapshot_prefix) and in its nets (HDF5Data sources) are looked for
in the solver file's folder first, then in the working directory. Snapshots are written atomically.
"""
import collections
import math
import os
import time

import numpy

from layers import Net, backend, fillers, hdf5_data
from netspec import caffe_pb2, io as netio
from solver import lr_policy
from solver.log import g, get_logger

log = get_logger()

NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"     # Caffe's SolverAction
EVENTS = ("start", "gradients_ready", "step", "test")


class DivergedError(FloatingPointError):
    """The loss became NaN or infinite; the run stopped without writing the bad weights."""


_CHUNK = 1 << 20      # elements per step of add_scaled: a 4 MB temporary rather than a weight-sized one


def add_scaled(y, alpha, x):
    """y += alpha * x (Caffe's caffe_axpy), in chunks on the CPU so that no weight-sized temporary is made (VGG's
    fc6 has 103M weights: 411 MB allocated and freed per step otherwise). The same float32 arithmetic either way."""
    if backend.is_gpu(y) or y.size <= _CHUNK or not (y.flags.c_contiguous and x.flags.c_contiguous):
        y += alpha * x
        return
    ys, xs = y.reshape(-1), x.reshape(-1)
    for start in range(0, ys.size, _CHUNK):
        ys[start:start + _CHUNK] += alpha * xs[start:start + _CHUNK]


def find_file(path, bases, what):
    """The first existing base/path (base None = the working directory); else FileNotFoundError saying where."""
    return hdf5_data.find_file(path, bases, what)


def share_trained_layers(target, source):
    """Caffe's Net::ShareTrainedLayersWith: target's layers use the param arrays of source's same-named layers."""
    target.share_with(source)


def seed_random(seed):
    """Caffe::set_random_seed on the CPU: one seed for the fillers, data shuffling and dropout (numpy's global
    generator, which Dropout draws from). CuPy's generator is seeded where a net moves to the GPU."""
    fillers.seed(seed)
    hdf5_data.seed(seed)
    numpy.random.seed(seed % 2 ** 32)


class Solver:
    type = None                  # Caffe's solver type string, set by each subclass
    history_slots = 1            # history blobs per learnable param (AdaDelta and Adam keep 2)
    net_class = Net              # what the train and test nets are built as
    paths_beside_solver = True   # relative paths try the solver's folder first (False: the working directory only)

    def __init__(self, param, device=None):
        self.source = _source_path(param)
        self.base_dir = (os.path.dirname(os.path.abspath(self.source))
                         if self.source and self.paths_beside_solver else None)
        try:
            self.param = netio.read_solver(self.source or param)
        except FileNotFoundError:
            raise FileNotFoundError(f"solver file '{param}' not found (looked for {os.path.abspath(param)})") \
                from None
        self.where = self.source or "solver"
        self._check_param()
        if self.type != self.param.type:
            log.warning(f"{self.where} asks for solver type \"{self.param.type}\", but a {type(self).__name__} "
                        f"(\"{self.type}\") is being built; use solver.get_solver to follow the file")
        if self.param.random_seed >= 0:
            seed_random(self.param.random_seed)
        log.info(f"Initializing solver from parameters:\n{netio.to_text(self.param).rstrip()}")
        self.snapshot_prefix_written, self.snapshot_prefix_path = self._snapshot_prefix()
        if self.param.snapshot > 0:
            self._check_snapshot_folder()
        self.net = self._train_net()
        self.test_nets = self._test_nets()
        for path in self.param.weights:             # the solver's own `weights` field (newer Caffe)
            self.copy_weights(self._find(path, "weights file"))
        self.iter = 0
        self.current_step = 0
        self.requested_early_exit = False
        self.last_snapshot = None                   # (iteration, caffemodel path, solverstate path)
        self._action_function = None
        self._callbacks = {event: [] for event in EVENTS}
        self.losses, self.smoothed_loss = [], 0.0
        self.batches_read = [0] * (1 + len(self.test_nets))   # forwards run by the solver: train net, test nets
        self.device = "cpu"
        self.to_device(device)

    # ------------------------------------------------------------------ setup
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
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None
        self.check_param()

    def check_param(self):
        """Solver-specific checks (Caffe's CHECKs in each solver's constructor)."""

    def _find(self, path, what):
        bases = [self.base_dir, None] if self.base_dir else [None]
        return find_file(path, bases, f"{self.where}: {what}")

    def _snapshot_prefix(self):
        """(prefix as written, prefix to write to). Caffe's UpgradeSnapshotPrefixProperty, then our resolution."""
        prefix = self.param.snapshot_prefix
        if not self.param.HasField("snapshot_prefix") and self.source:
            # Caffe: the solver file's path without its extension, so the snapshots sit beside the solver
            return os.path.splitext(self.source)[0], os.path.splitext(os.path.abspath(self.source))[0]
        stem = os.path.splitext(os.path.basename(self.source))[0] if self.source else "solver"
        if os.path.isabs(prefix) or not self.base_dir:
            if prefix and os.path.isdir(prefix):
                prefix = os.path.join(prefix, stem)
            return prefix, prefix
        # relative: the solver's folder when the prefix's folder is there (or nowhere), else the working directory
        for base in (self.base_dir, os.getcwd()):
            if os.path.isdir(os.path.join(base, prefix)):
                prefix = os.path.join(prefix, stem)
                return prefix, os.path.join(base, prefix)
        folder = os.path.dirname(prefix)
        if folder and not os.path.isdir(os.path.join(self.base_dir, folder)) and os.path.isdir(folder):
            return prefix, os.path.abspath(prefix)
        return prefix, os.path.join(self.base_dir, prefix)

    def _check_snapshot_folder(self):
        """Fail now, not after hours of training, when snapshots cannot be written (Caffe checks at init too)."""
        folder = os.path.dirname(os.path.abspath(self.snapshot_prefix_path))
        existing = folder
        while not os.path.isdir(existing):
            existing = os.path.dirname(existing)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.where}: cannot write snapshots to {folder} (snapshot_prefix "
                                  f"\"{self.param.snapshot_prefix}\"): {existing} is not writable")

    def _build_net(self, net_param, state):
        """A Net in `state` (a merged NetState), resolving its relative file paths against the solver folder."""
        net_param = caffe_pb2.NetParameter.FromString(net_param.SerializeToString())
        net_param.ClearField("state")                 # merged into `state` already, as Caffe does
        return self.net_class(net_param, phase=state.phase, stages=list(state.stage), level=state.level,
                              base_dir=self.base_dir)

    def _train_net(self):
        p = self.param
        given = [f for f in ("train_net_param", "train_net", "net_param", "net") if p.HasField(f)]
        if len(given) != 1:
            raise ValueError(f"{self.where}: give exactly one of train_net_param, train_net, net_param or net "
                             f"(found {', '.join(given) or 'none'})")
        field = given[0]
        if field in ("train_net_param", "net_param"):
            net_param = netio.read_net(getattr(p, field))
            log.info(f"Creating training net specified in {field}.")
        else:
            path = self._find(getattr(p, field), f"{field}")
            log.info(f"Creating training net from {field} file: {path}")
            net_param = netio.read_net(path)
        state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
        state.MergeFrom(net_param.state)
        state.MergeFrom(p.train_state)
        return self._build_net(net_param, state)

    def _test_nets(self):
        p = self.param
        generic = p.HasField("net_param") or p.HasField("net")
        specific = len(p.test_net_param) + len(p.test_net)
        if generic:
            if len(p.test_iter) < specific:
                raise ValueError(f"{self.where}: test_iter must be given for each test net "
                                 f"({specific} test nets, {len(p.test_iter)} test_iter)")
        elif len(p.test_iter) != specific:
            raise ValueError(f"{self.where}: test_iter must be given for each test net "
                             f"({specific} test nets, {len(p.test_iter)} test_iter)")
        sources = [("test_net_param", netio.read_net(n)) for n in p.test_net_param]
        sources += [(f"test_net file {n}", netio.read_net(self._find(n, "test_net"))) for n in p.test_net]
        if generic:
            net_param = (netio.read_net(p.net_param) if p.HasField("net_param")
                         else netio.read_net(self._find(p.net, "net")))
            sources += [("net", net_param)] * (len(p.test_iter) - specific)
        if p.test_state and len(p.test_state) != len(sources):
            raise ValueError(f"{self.where}: test_state must be unspecified or given for each test net "
                             f"({len(sources)} test nets, {len(p.test_state)} test_state)")
        if sources and p.test_interval <= 0:
            raise ValueError(f"{self.where}: test nets are defined, so test_interval must be > 0 "
                             f"(a huge value, as FCN's 999999999, builds them without testing)")
        nets = []
        for i, (what, net_param) in enumerate(sources):
            state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
            state.MergeFrom(net_param.state)
            if p.test_state:
                state.MergeFrom(p.test_state[i])
            log.info(f"Creating test net (#{i}) specified by {what}")
            nets.append(self._build_net(net_param, state))
        return nets

    def copy_weights(self, path):
        """Finetune from `path` (.caffemodel or .caffemodel.h5): copied into the train and test nets by layer name."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file '{path}' not found (looked for {os.path.abspath(path)})")
        log.info(f"Finetuning from {path}")
        source = netio.read_weights(path)
        for net in [self.net] + self.test_nets:
            net.copy_from_proto(source, origin=path)

    def to_device(self, device):
        """Move every net and the solver's history to `device` ('cpu', 'gpu', 'gpu:N', an id; None = CPU)."""
        kind, device_id = backend.resolve_device(device)
        if kind == "gpu":
            backend.use_device(device_id)               # temporaries go where the blobs are (caffe.set_device)
        for net in [self.net] + self.test_nets:
            net.to_gpu(device_id) if kind == "gpu" else net.to_cpu()
        self.device = "cpu" if kind == "cpu" else f"gpu:{device_id}"
        if kind == "gpu" and self.param.random_seed >= 0:
            backend.cupy.random.seed(self.param.random_seed)
        if not hasattr(self, "history"):
            self.history = [self._zeros_like(blob) for _ in range(self.history_slots)
                            for blob in self.net.learnable_params]
        else:
            self.history = [self._on_device(h, blob) for h, blob in zip(self.history, self._history_params())]
        return self

    def _history_params(self):
        return self.net.learnable_params * self.history_slots

    @staticmethod
    def _zeros_like(blob):
        return blob.xp.zeros(blob.shape, dtype=blob.dtype)

    @staticmethod
    def _on_device(array, blob):
        if backend.get_array_module(array) is blob.xp:
            return array
        return blob.xp.asarray(backend.to_cpu(array))

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
    def solve(self, resume_file=None):
        """Caffe's Solve: optionally restore, step to max_iter, snapshot at the end, final display and test."""
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

    def step(self, iters):
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
    def test_all(self):
        """Evaluate every test net; returns a list of {output name: mean value (array)} per test net."""
        results = []
        for test_net_id in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(test_net_id))
        return results

    def share_weights(self, net):
        """Make `net` use the train net's current weights (pycaffe's net.share_with(solver.net))."""
        share_trained_layers(net, self.net)

    def test(self, test_net_id=0):
        """Caffe's Test: test_iter forwards of test net #id at the train net's weights; means of its outputs."""
        log.info(f"Iteration {self.iter}, Testing net (#{test_net_id})")
        net = self.test_nets[test_net_id]
        self.share_weights(net)
        iters = self.param.test_iter[test_net_id]
        sums, loss = collections.OrderedDict(), 0.0
        for _ in range(iters):
            request = self._requested_action()
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
    def learning_rate(self):
        """(rate, current_step) for the current iteration, as GetLearningRate computes it."""
        return lr_policy.learning_rate(self.param, self.iter, self.current_step)

    def apply_update(self):
        """Caffe's ApplyUpdate: clip, then per param normalize, regularize, compute the update; then w -= update."""
        rate, self.current_step = self.learning_rate()
        if self.param.display and self.iter % self.param.display == 0:
            log.info(f"Iteration {self.iter}, lr = {g(rate)}")
        self.clip_gradients()
        pending = []
        for param_id in range(len(self.net.learnable_params)):
            self.normalize(param_id)
            if self.fused_update(param_id, rate):
                continue                       # regularized, updated and applied on the device in one pass
            self.regularize(param_id)
            self.compute_update_value(param_id, rate)
            pending.append(self.net.learnable_params[param_id])
        for blob in pending:
            data = blob.data
            data -= blob.diff

    def fused_update(self, param_id, rate):
        """Regularize, compute and apply the update of one param in one step where a solver can (SGD on the GPU);
        True when done. Params are independent, so applying one before computing the next changes nothing."""
        return False

    def grad_l2norm(self):
        """The global L2 norm of all learnable params' diffs (what clip_gradients compares against), summed on
        the params' device and read once."""
        squares = [(blob.diff.astype(numpy.float64) ** 2).sum() for blob in self.net.learnable_params]
        return math.sqrt(float(sum(squares))) if squares else 0.0

    def clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        norm = self.grad_l2norm()
        if norm > clip:
            scale = numpy.float32(clip / norm)
            log.info(f"Gradient clipping: scaling down gradients (L2 norm {g(norm)} > {g(clip)}) "
                     f"by scale factor {g(scale)}")
            for blob in self.net.learnable_params:
                diff = blob.diff
                diff *= scale

    def normalize(self, param_id):
        if self.param.iter_size != 1:
            diff = self.net.learnable_params[param_id].diff
            diff *= numpy.float32(1.0 / self.param.iter_size)

    def decay(self, param_id):
        """weight_decay * decay_mult of learnable param #param_id, in float32 as Caffe computes it."""
        return numpy.float32(self.param.weight_decay) * numpy.float32(self.net.params_weight_decay[param_id])

    def regularize(self, param_id):
        blob = self.net.learnable_params[param_id]
        decay = self.decay(param_id)
        if not decay:
            return
        diff = blob.diff
        if self.param.regularization_type == "L2":
            add_scaled(diff, decay, blob.data)
        else:
            diff += decay * blob.xp.sign(blob.data)

    def compute_update_value(self, param_id, rate):
        """Turn the diff of learnable param #param_id into the update (subtracted from the param)."""
        raise NotImplementedError(f"{type(self).__name__} has no update rule")

    def local_rate(self, param_id, rate):
        return numpy.float32(rate) * numpy.float32(self.net.params_lr[param_id])

    def history_of(self, index):
        """History blob #index as an array on the param's device."""
        blob = self._history_params()[index]
        self.history[index] = self._on_device(self.history[index], blob)
        return self.history[index]

    # ------------------------------------------------------------------ snapshots
    def snapshot_filename(self, extension):
        return f"{self.snapshot_prefix_path}_iter_{self.iter}{extension}"

    def snapshot(self):
        """Write <prefix>_iter_N.caffemodel and .solverstate (.caffemodel.h5 / .solverstate.h5 for HDF5)."""
        hdf5 = self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5
        model_ext, state_ext = (".caffemodel.h5", ".solverstate.h5") if hdf5 else (".caffemodel", ".solverstate")
        model_path, state_path = self.snapshot_filename(model_ext), self.snapshot_filename(state_ext)
        folder = os.path.dirname(os.path.abspath(model_path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the snapshot folder {folder} (snapshot_prefix "
                          f"\"{self.param.snapshot_prefix}\"): {e}") from None
        proto = self.net.to_proto(write_diff=self.param.snapshot_diff)
        if hdf5:
            log.info(f"Snapshotting to HDF5 file {model_path}")
            netio.write_caffemodel_h5(proto, model_path, write_diff=self.param.snapshot_diff)
        else:
            log.info(f"Snapshotting to binary proto file {model_path}")
            netio.write_caffemodel(proto, model_path)
        # learned_net names the model as Caffe would, by the prefix as written in the solver
        state = caffe_pb2.SolverState(iter=self.iter, current_step=self.current_step,
                                      learned_net=f"{self.snapshot_prefix_written}_iter_{self.iter}{model_ext}")
        for array in self.history:
            state.history.add().CopyFrom(netio.array_to_blob(backend.to_cpu(array)))
        what = "HDF5" if hdf5 else "binary proto"
        log.info(f"Snapshotting solver state to {what} file {state_path}")
        netio.write_solverstate(state, state_path)
        self.last_snapshot = (self.iter, model_path, state_path)
        return model_path, state_path

    def restore(self, state_file):
        """Continue from a .solverstate (binary or HDF5): iteration, lr step, history and the learned weights.

        Data layers that can (HDF5Data) skip what the run had read, so a resumed run sees the batches an
        uninterrupted one would have seen.
        """
        state_file = os.fspath(state_file)
        if not os.path.isfile(state_file):
            raise FileNotFoundError(f"solver state '{state_file}' not found (looked for "
                                    f"{os.path.abspath(state_file)})")
        state = netio.read_solverstate(state_file)
        if len(state.history) != len(self.history):
            raise ValueError(f"{state_file}: holds {len(state.history)} history blob(s), but this "
                             f"{self.type} solver keeps {len(self.history)} for this net ({self.history_slots} per "
                             f"learnable param); was it written for another net or solver type?")
        arrays = []
        for i, (proto, blob) in enumerate(zip(state.history, self._history_params())):
            if not netio.legacy_shape_equals(proto, blob.shape):
                stored = netio.blob_to_array(proto)
                if stored.size != blob.count:
                    raise ValueError(f"{state_file}: history blob {i} has shape {stored.shape}, but learnable "
                                     f"param {i % len(self.net.learnable_params)} has shape {blob.shape}")
                arrays.append(stored.reshape(blob.shape))
            else:
                arrays.append(netio.blob_to_array(proto, shape=blob.shape))
        if state.learned_net:
            weights = self._find_learned_net(state.learned_net, state_file)
            self.net.copy_from(weights)          # the test nets share it at test time
        self.iter = state.iter
        self.current_step = state.current_step
        self.history = [self._on_device(numpy.asarray(a, dtype=blob.dtype), blob)
                        for a, blob in zip(arrays, self._history_params())]
        self._fast_forward_data()
        log.info(f"{self.type} solver: restored iteration {self.iter} from {state_file}")
        return self

    def _find_learned_net(self, learned, state_file):
        """The weights a solverstate names: beside the .solverstate first (Caffe writes the pair side by side),
        then as written (the working directory), then under the solver folder, then the model with the state's
        own file name (a renamed pair)."""
        folder = os.path.dirname(os.path.abspath(state_file))
        stem = state_file[:-3] if state_file.endswith(".h5") else state_file
        stem = stem[:-len(".solverstate")] if stem.endswith(".solverstate") else os.path.splitext(stem)[0]
        model_ext = ".caffemodel.h5" if learned.endswith(".h5") else ".caffemodel"
        candidates = [learned] if os.path.isabs(learned) else []
        candidates += [os.path.join(folder, os.path.basename(learned)), learned]
        if self.base_dir and not os.path.isabs(learned):
            candidates.append(os.path.join(self.base_dir, learned))
        candidates.append(stem + model_ext)
        for candidate in candidates:
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{state_file}: its weights '{learned}' (learned_net) were not found (looked for "
                                f"{', '.join(dict.fromkeys(os.path.abspath(c) for c in candidates))})")

    def _fast_forward_data(self):
        """Move data layers that can (fast_forward) to where an uninterrupted run would be at self.iter."""
        p = self.param
        tests = 0
        if p.test_interval:
            tests = sum(1 for it in range(0, self.iter, p.test_interval) if it > 0 or p.test_initialization)
        wanted = [self.iter * p.iter_size] + [tests * iters for iters in p.test_iter[:len(self.test_nets)]]
        for k, (net, target) in enumerate(zip([self.net] + self.test_nets, wanted)):
            skip = target - self.batches_read[k]
            # a Python layer answers for its class (PythonLayer.__getattr__): a user's may define fast_forward too
            layers = [layer for layer in net.layers if hasattr(layer, "fast_forward")]
            if skip < 0 and layers:
                log.warning(f"restoring iteration {self.iter} into a solver whose {'test' if k else 'train'} net "
                            f"has read past it: its data layers go on from where they are")
                continue
            for layer in layers:
                layer.fast_forward(skip)
            self.batches_read[k] = target

    def __repr__(self):
        return f"<{type(self).__name__} ({self.type}) on '{self.net.name}', iter {self.iter}>"


def _source_path(param):
    """The solver file's path when `param` names one, else None (inline text or a message)."""
    if isinstance(param, os.PathLike):
        return os.fspath(param)
    if isinstance(param, str) and "\n" not in param and "{" not in param and (
            os.path.exists(param) or param.lower().endswith(netio.TEXT_SUFFIXES) or ":" not in param):
        return param
    return None

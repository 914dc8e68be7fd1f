"""pycaffe's Net and solvers (cf. python/caffe/pycaffe.py and the classes of _caffe.cpp) on this engine.

caffe.Net(file, phase, level=0, stages=None, weights=None), and the legacy caffe.Net(file, weights, phase), build a
layers.Net: blobs, params, layers, layer_dict, inputs, outputs and Caffe's index lists (_layer_names, _blob_names,
_inputs, _outputs, _blob_loss_weights, _top_ids, _bottom_ids) come from there, as do forward/backward with pycaffe's
start/end semantics, _forward/_backward, reshape, copy_from, share_with, save, save_hdf5, load_hdf5 and the hooks.
This class adds what is pycaffe's own: the constructor forms, top_names and bottom_names keyed by layer name,
pycaffe's checks of forward/backward keyword arguments, forward_all, forward_backward_all and set_input_arrays.

The solvers are the engine's (solver/) with pycaffe's conventions: built as SGDSolver(filename) on the device that
caffe.set_mode_gpu/set_device chose, with this Net for their nets, and with relative paths in the solver file and
its nets (net files, snapshot_prefix, data sources) taken from the working directory, as Caffe takes them.
"""
import collections
import itertools
import os

import numpy

import layers
import solver as engine
from fcn_caffe import _caffe
from fcn_caffe._caffe import NCCL, Timer  # noqa: F401 (pycaffe.py exports them too)
from solver.log import get_logger


class MissingFileError(RuntimeError, FileNotFoundError):
    """A net or weights file that cannot be opened: the RuntimeError pycaffe raises, and a FileNotFoundError."""


def _check_file(path):
    if not os.path.isfile(path):
        raise MissingFileError(f"Could not open file {path}")


class Net(layers.Net):
    """A Caffe net as pycaffe makes it: Net(network_file, phase, level=0, stages=None, weights=None)."""

    def __init__(self, network_file, phase, level=0, stages=None, weights=None, **options):
        if isinstance(phase, (str, os.PathLike)) and phase not in ("TRAIN", "TEST"):
            weights, phase, level = phase, level, 0          # the legacy Net(network_file, weights, phase)
            get_logger().warning(f"DEPRECATION WARNING - deprecated use of Python interface; use "
                                 f"Net('{network_file}', {phase}, weights='{weights}') instead")
        if isinstance(network_file, (str, os.PathLike)):
            network_file = os.fspath(network_file)
            _check_file(network_file)
        if weights is not None:
            weights = os.fspath(weights)
            _check_file(weights)
        options.setdefault("device", _caffe.current_device())
        options.setdefault("base_dir", os.getcwd())       # data sources: from the working directory, as Caffe
        super().__init__(network_file, phase=phase, weights=weights, stages=stages or (), level=level, **options)

    # pycaffe keys these by layer name; the engine's lists by layer index stay in _layer_tops/_layer_bottoms
    @property
    def top_names(self):
        return collections.OrderedDict(zip(self._layer_names, map(list, self._layer_tops)))

    @property
    def bottom_names(self):
        return collections.OrderedDict(zip(self._layer_names, map(list, self._layer_bottoms)))

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Feed the inputs given as keyword arguments (all of them, batch-sized), run start..end, return
        {blob name: data} for the outputs (the tops of `end` when given) and `blobs`."""
        if kwargs:
            self._check_arrays(kwargs, self.inputs, "Input blob arguments do not match net inputs.",
                               "Input is not batch sized")
            for name, array in kwargs.items():
                self._feed(name, array)
        return super().forward(blobs=blobs, start=start, end=end)

    def _feed(self, name, array):
        """pycaffe's blob.data[...] = array; an array of another size, which pycaffe refuses, reshapes the net."""
        blob = self.blobs[name]
        try:
            fits = numpy.broadcast_shapes(numpy.shape(array), blob.shape) == blob.shape
        except ValueError:
            fits = False
        if fits:
            blob.data[...] = blob.xp.asarray(array, dtype=blob.dtype)
        else:
            self.set_input(name, array)

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Set the top diffs given as keyword arguments (all outputs, batch-sized), back-propagate start..end,
        return {blob name: diff} for the inputs (the bottoms of `end` when given) and `diffs`."""
        if kwargs:
            self._check_arrays(kwargs, self.outputs, "Top diff arguments do not match net outputs.",
                               "Diff is not batch sized")
        return super().backward(diffs=diffs, start=start, end=end, **kwargs)

    def _check_arrays(self, arrays, names, mismatch, not_batch_sized):
        """pycaffe's checks of forward/backward keyword arrays, with its messages: one for each of `names`, each
        with the net's batch size."""
        if set(arrays) != set(names):
            raise ValueError(f"{mismatch} (the net's: {sorted(names)}, given: {sorted(arrays)})")
        for name, array in arrays.items():
            if numpy.shape(array)[0] != self.blobs[name].shape[0]:
                raise ValueError(f"{not_batch_sized} ('{name}' has {numpy.shape(array)[0]} items, the net's batch "
                                 f"is {self.blobs[name].shape[0]})")

    def forward_all(self, blobs=None, **kwargs):
        """forward() over the inputs in batches of the net's batch size; {blob name: stacked data}."""
        if not kwargs:
            raise ValueError("forward_all needs the input arrays as keyword arguments, e.g. net.forward_all(data=x)")
        outs = {name: [] for name in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs):
            for name, data in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(layers.backend.to_cpu(data).copy())
        return self._unpad({name: numpy.asarray(v) for name, v in outs.items()}, kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward() then backward() in batches: inputs and output diffs come as keyword arguments.
        Returns ({blob name: stacked data}, {blob name: stacked diff})."""
        if not kwargs:
            raise ValueError("forward_backward_all needs input or output-diff arrays as keyword arguments")
        outs = {name: [] for name in set(self.outputs + list(blobs or []))}
        grads = {name: [] for name in set(self.inputs + list(diffs or []))}
        forward_batches = self._batch({k: v for k, v in kwargs.items() if k in self.inputs})
        backward_batches = self._batch({k: v for k, v in kwargs.items() if k in self.outputs})
        for fb, bb in itertools.zip_longest(forward_batches, backward_batches, fillvalue={}):
            for name, data in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(layers.backend.to_cpu(data).copy())
            for name, diff in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(layers.backend.to_cpu(diff).copy())
        return (self._unpad({name: numpy.asarray(v) for name, v in outs.items()}, kwargs),
                self._unpad({name: numpy.asarray(v) for name, v in grads.items()}, kwargs))

    @staticmethod
    def _unpad(stacked, given):
        """Drop the rows of the zero-padded last batch."""
        pad = len(next(iter(stacked.values()))) - len(next(iter(given.values())))
        return {name: v[:len(v) - pad] for name, v in stacked.items()} if pad > 0 else stacked

    def _batch(self, arrays):
        """Yield {name: rows} batches of the net's batch size (its first blob's), the last padded with zeros."""
        if not arrays:
            return
        count = len(next(iter(arrays.values())))
        batch_size = next(iter(self.blobs.values())).shape[0]
        for start in range(0, count - count % batch_size, batch_size):
            yield {name: rows[start:start + batch_size] for name, rows in arrays.items()}
        remainder = count % batch_size
        if remainder:
            yield {name: numpy.concatenate([rows[-remainder:],
                                            numpy.zeros((batch_size - remainder,) + numpy.shape(rows)[1:])])
                   for name, rows in arrays.items()}

    def set_input_arrays(self, data, labels):
        """Hand arrays to the net's first layer, a MemoryData layer (Caffe's MemoryDataLayer::Reset): data
        N x C x H x W float32, labels N (or N x 1 x 1 x 1), N a multiple of its batch size."""
        if labels.ndim == 1:
            labels = numpy.ascontiguousarray(labels[:, numpy.newaxis, numpy.newaxis, numpy.newaxis])
        first = self.layers[0] if self.layers else None
        if first is None or first.type != "MemoryData":
            raise RuntimeError("set_input_arrays may only be called if the first layer is a MemoryDataLayer")
        p = first.param.memory_data_param
        _check_array(data, "data array", p.channels, p.height, p.width)
        _check_array(labels, "labels array", 1, 1, 1)
        if data.shape[0] != labels.shape[0]:
            raise RuntimeError("data and labels must have the same first dimension")
        if data.shape[0] % p.batch_size:
            raise RuntimeError(f"first dimensions of input arrays must be a multiple of batch size "
                               f"({data.shape[0]} for a batch size of {p.batch_size})")
        first.reset(data, labels, data.shape[0])

    def after_backward(self, fn):
        if isinstance(fn, NCCL):          # pycaffe's layer-wise reduce: here the whole gradient is all-reduced at once,
            return                        # in on_gradients_ready (solver.add_callback(nccl))
        super().after_backward(fn)


def _check_array(array, what, channels, height, width):
    """pycaffe's CheckContiguousArray, with its messages."""
    if not (isinstance(array, numpy.ndarray) and array.flags.c_contiguous):
        raise RuntimeError(f"{what} must be C contiguous")
    if array.ndim != 4:
        raise RuntimeError(f"{what} must be 4-d")
    if array.dtype != numpy.float32:
        raise RuntimeError(f"{what} must be float32")
    for axis, (name, want) in enumerate([("number of channels", channels), ("height", height),
                                         ("width", width)], start=1):
        if array.shape[axis] != want:
            raise RuntimeError(f"{what} has wrong {name} ({array.shape[axis]}, the layer takes {want})")


class PycaffeSolver:
    """Mixed into each engine solver: pycaffe's constructor, device, nets, path resolution and NCCL form."""
    net_class = Net
    paths_beside_solver = False

    def __init__(self, filename, device=None):
        super().__init__(filename, device=_caffe.current_device() if device is None else device)
        self.solver_count = _caffe.solver_count()      # what a restore compares the snapshot's rank count with

    def add_callback(self, fn, event="step"):
        """pycaffe's add_callback(on_start, on_gradients_ready) or add_callback(nccl), or the engine's events."""
        if isinstance(fn, NCCL):
            return super().add_callback(lambda solver: fn.on_gradients_ready(), "gradients_ready")
        return super().add_callback(fn, event)


class SGDSolver(PycaffeSolver, engine.SGDSolver):
    pass


class NesterovSolver(PycaffeSolver, engine.NesterovSolver):
    pass


class AdaGradSolver(PycaffeSolver, engine.AdaGradSolver):
    pass


class RMSPropSolver(PycaffeSolver, engine.RMSPropSolver):
    pass


class AdaDeltaSolver(PycaffeSolver, engine.AdaDeltaSolver):
    pass


class AdamSolver(PycaffeSolver, engine.AdamSolver):
    pass


SOLVERS = {cls.type: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                     AdamSolver)}


def get_solver(filename):
    """The solver of the type the file names (`type`, or the legacy `solver_type`)."""
    return engine.get_solver(filename, solvers=SOLVERS)

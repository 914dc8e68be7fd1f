"""Read a caffe-golden solver case (solver_*.h5) and lay it out as files, as Caffe ran it.

A case holds the solver and net texts, the HDF5 data file, the initial params, and per step the params, raw grads,
loss, learning rate and gradient norm real Caffe computed. `write(folder)` gives folder/solver.prototxt,
train.prototxt, train_h5.txt and train.h5, so the solver runs exactly what Caffe ran.
"""
import os

import h5py
import numpy

from tests.conftest import GOLDEN

CASES = sorted(p.stem for p in GOLDEN.glob("solver_*.h5"))


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _layers(group):
    return {layer: [group[layer][str(i)][()] for i in range(len(group[layer]))] for layer in group}


class SolverCase:
    def __init__(self, name):
        self.name = name
        self.path = GOLDEN / f"{name}.h5"
        with h5py.File(self.path, "r") as f:
            self.attrs = {k: _text(v) for k, v in f.attrs.items()}
            data = f["data_files"]
            self.data_attrs = {k: _text(v) for k, v in data.attrs.items()}
            self.data = {k: data[k][()] for k in data}
            self.params = _layers(f["params"])
            self.num_steps = int(self.attrs["num_steps"])
            self.steps = [{"params": _layers(f[f"step_{k}/params"]), "grads": _layers(f[f"step_{k}/grads"])}
                          for k in range(1, self.num_steps + 1)]
            self.losses = f["losses"][()]
            self.learning_rates = f["learning_rates"][()]
            self.grad_l2norms = f["grad_l2norms"][()]
            self.snapshot = {}
            if "snapshot" in f:
                snap = f["snapshot"]
                self.snapshot = {k: snap[k][()].tobytes() for k in ("caffemodel", "solverstate", "caffemodel_h5",
                                                                     "solverstate_h5")}
                self.snapshot["history"] = [snap["history"][str(i)][()] for i in range(len(snap["history"]))]
                self.snapshot["files"] = [_text(x) for x in snap.attrs["files"]]
                self.snapshot["solver_prototxt_hdf5"] = _text(snap.attrs["solver_prototxt_hdf5"])
        self.solver_prototxt = self.attrs["solver_prototxt"]
        self.net_prototxt = self.attrs["net_prototxt"]
        self.param_order = list(self.attrs["learnable_param_order"])

    def write(self, folder, solver_text=None):
        """Write the solver, net, source list and data file into `folder`; return the solver's path."""
        folder = str(folder)
        with open(os.path.join(folder, "train.prototxt"), "w") as f:
            f.write(self.net_prototxt)
        with open(os.path.join(folder, self.data_attrs["source"]), "w") as f:
            f.write(self.data_attrs["source_contents"])
        with h5py.File(os.path.join(folder, self.data_attrs["filename"]), "w") as f:
            for name, array in self.data.items():
                f.create_dataset(name, data=array)
        path = os.path.join(folder, "solver.prototxt")
        with open(path, "w") as f:
            f.write(solver_text or self.solver_prototxt)
        return path

    def set_params(self, net, params=None):
        for layer, arrays in (params or self.params).items():
            for blob, array in zip(net.params[layer], arrays):
                blob.data[...] = blob.xp.asarray(array)


def close(actual, expected, rtol=1e-5, floor=1e-6):
    """The README's solver tolerance: rtol with an absolute floor relative to max |expected|."""
    actual = numpy.asarray(actual, dtype=numpy.float64)
    expected = numpy.asarray(expected, dtype=numpy.float64)
    atol = floor * (numpy.abs(expected).max() if expected.size else 0)
    return actual.shape == expected.shape and bool(numpy.all(numpy.abs(actual - expected) <= atol + rtol *
                                                             numpy.abs(expected)))

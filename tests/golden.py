"""Read a caffe-golden case and compare a Net against what real Caffe computed (tolerances: its README).

Cases of tests/vectors/caffe-golden-catalog may hold three more parts: `params_after_forward` (the params after
forward, where BatchNorm has updated its statistics), `written_file` (what HDF5Output wrote; the case's absolute
/tmp file_name is redirected into a folder of the caller's) and the attr `force_backward` (False where the net
leaves it out, its layers refusing a forced bottom).
"""
import os

import h5py
import numpy

from layers import Net, backend
from netspec import io

# blob values that are pure data movement must match bit for bit
EXACT_TYPES = {"Crop", "Concat", "Flatten", "Reshape", "Split", "ArgMax", "Threshold", "DummyData", "Silence",
               "Slice", "Tile", "Filter", "BatchReindex", "Parameter"}


class Case:
    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            self.groups = {}
            for group in ("inputs", "outputs", "top_diffs", "diffs"):
                self.groups[group] = {k: f[group][k][()] for k in f[group]} if group in f else {}
            for group in ("params", "param_diffs", "params_after_forward"):
                self.groups[group] = ({layer: [f[group][layer][str(i)][()] for i in range(len(f[group][layer]))]
                                       for layer in f[group]} if group in f else {})
            written = f.get("written_file")
            self.groups["written_file"] = {k: written[k][()] for k in written} if written is not None else {}
            self.written_name = written.attrs["file_name"] if written is not None else None
        self.name = path.stem
        self.prototxt = self.attrs["prototxt"]
        self.phase = self.attrs.get("phase", "TEST")

    def __getattr__(self, group):
        try:
            return self.__dict__["groups"][group]
        except KeyError:
            raise AttributeError(group) from None

    def layer_types(self):
        return [l.type for l in io.read_net(self.prototxt).layer]

    def net_param(self, workdir=None, force_backward=None):
        """The case's NetParameter; HDF5Output files go into `workdir` (needed when the net has one)."""
        param = io.read_net(self.prototxt)
        if "force_backward" in self.attrs:
            assert bool(self.attrs["force_backward"]) == param.force_backward, f"{self.name}: attr force_backward"
        if force_backward is not None:
            param.force_backward = force_backward
        for layer in param.layer:
            if layer.type == "HDF5Output":
                assert workdir is not None, f"{self.name}: HDF5Output needs a folder to write into"
                name = layer.hdf5_output_param.file_name
                layer.hdf5_output_param.file_name = os.path.join(workdir, os.path.basename(name))
        return param


def assert_close(actual, expected, what, kind):
    """kind: 'forward' (rtol 1e-5), 'gradient' (rtol 1e-4) or 'exact'."""
    actual = numpy.asarray(backend.to_cpu(actual), dtype=numpy.float64)
    expected = numpy.asarray(expected, dtype=numpy.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, Caffe has {expected.shape}"
    if kind == "exact":
        bad = actual != expected
        assert not bad.any(), (f"{what}: {int(bad.sum())} values differ from Caffe's "
                               f"(max |diff| {numpy.abs(actual - expected).max():.3g}), expected an exact match")
        return
    rtol, floor = (1e-5, 1e-6) if kind == "forward" else (1e-4, 1e-5)
    atol = floor * (numpy.abs(expected).max() if expected.size else 0)
    err = numpy.abs(actual - expected)
    bad = err > atol + rtol * numpy.abs(expected)
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.size} values off (max |diff| {err.max():.3g}, "
                           f"max |Caffe| {numpy.abs(expected).max():.3g})")


def run_case(case, device="cpu", workdir=None, force_backward=None):
    """Build the case's net, load its params and inputs, run forward (and backward), compare everything.
    `workdir`: where an HDF5Output writes; `force_backward`: override the net's (the diffs must not change)."""
    net = Net(case.net_param(workdir, force_backward), phase=case.phase)
    for layer, arrays in case.params.items():
        for blob, array in zip(net.params[layer], arrays):
            blob.data[...] = array
    if device == "gpu":
        net.to_gpu()
    net.forward(**case.inputs)
    # data movement is exact only on exact inputs: a Split or Crop of a conv's output inherits its rounding
    exact = set(net.inputs)
    for layer, bottoms, tops in zip(net.layers, net.bottom_names, net.top_names):
        for t in tops:
            if layer.type in EXACT_TYPES and all(b in exact for b in bottoms):
                exact.add(t)
            else:
                exact.discard(t)
    for name, expected in case.outputs.items():
        kind = "exact" if name in exact else "forward"
        assert_close(net.blobs[name].data, expected, f"{case.name}: forward blob '{name}'", kind)
    for layer, arrays in case.params_after_forward.items():
        for i, (blob, expected) in enumerate(zip(net.params[layer], arrays)):
            assert_close(blob.data, expected, f"{case.name}: param {i} of layer '{layer}' after forward", "forward")
    check_written_file(case, net)
    if not case.attrs.get("has_backward", True) or not case.diffs:
        return net
    net.backward(**case.top_diffs)
    for name, expected in case.diffs.items():
        assert_close(net.blobs[name].diff, expected, f"{case.name}: diff of blob '{name}'", "gradient")
    for layer, arrays in case.param_diffs.items():
        for i, (blob, expected) in enumerate(zip(net.params[layer], arrays)):
            assert_close(blob.diff, expected, f"{case.name}: diff of param {i} of layer '{layer}'", "gradient")
    return net


def check_written_file(case, net):
    """The datasets an HDF5Output layer wrote must be Caffe's, bit for bit (it only copies)."""
    if not case.written_file:
        return
    files = [layer.file_name for layer in net.layers if layer.type == "HDF5Output"]
    assert [os.path.basename(f) for f in files] == [os.path.basename(case.written_name)], f"{case.name}: files"
    with h5py.File(files[0], "r") as f:
        assert sorted(f) == sorted(case.written_file), f"{case.name}: datasets {sorted(f)} written"
        for name, expected in case.written_file.items():
            assert f[name].dtype == expected.dtype, f"{case.name}: dataset '{name}' is {f[name].dtype}"
            assert_close(f[name][()], expected, f"{case.name}: written dataset '{name}'", "exact")

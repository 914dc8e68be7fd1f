"""Load and save Caffe weights (.caffemodel in V0/V1/V2 binary, .caffemodel.h5) the way Caffe reads them.

Reading, upgrading and writing are netspec.io's; this module adds what a weights tool needs on top:
which format a file is in, legacy blob shapes normalized as Caffe's loader gives them, layer types and
order taken from a net prototxt (HDF5 files keep neither), and conversion between the formats.

Legacy shapes. V0/V1 files store every blob as 4-D num x channels x height x width: a bias as 1x1x1xN,
an InnerProduct weight as 1x1xMxK. Caffe's V1->V2 upgrade copies blobs untouched, and
Net::CopyTrainedLayersFrom accepts such a blob when it equals the target shape padded on the left
with 1s (Blob::ShapeEquals), then copies the values into the target's own shape. So the shape a
blob "really" has is the target layer's: normalize_shapes rewrites legacy blobs to it where the layer
type fixes it (Convolution/Deconvolution bias -> N, InnerProduct weight -> MxK, bias -> N) and keeps
the stored shape for any other type. HDF5 needs this: Caffe's HDF5 loader demands exact shapes.
"""
import os

import numpy as np

from netspec import caffe_pb2 as pb
from netspec import io
from netspec.errors import CaffeFormatError

V0_BINARY, V1_BINARY, V2_BINARY, HDF5 = "V0 binary", "V1 binary", "V2 binary", "HDF5"
SOLVERSTATE_SUFFIXES = (".solverstate", ".solverstate.h5")

_LEGACY_FIELDS = ("num", "channels", "height", "width")
# NetParameter field numbers: V0/V1 `layers` and V2 `layer`; V1LayerParameter's V0 `layer` field.
_NET_LAYERS_V1, _NET_LAYER_V2, _V1_V0_LAYER = 2, 100, 1


class Weights:
    """The weights of one file: `param` (a NetParameter whose layers hold the blobs), the `format` it
    was read from, its `path`, and `reshaped`: (layer, blob index, stored shape, new shape) for every
    legacy blob that normalize_shapes rewrote (`kept_legacy`: those it left, their type being unknown)."""

    def __init__(self, param, format, path=None):
        self.param = param
        self.format = format
        self.path = path
        self.reshaped = []
        self.kept_legacy = []
        self.not_in_net = []      # with a net given to load: the file's layers that net does not have

    def layers_with_params(self):
        return [layer for layer in self.param.layer if len(layer.blobs)]

    def arrays(self):
        """{layer name: [ndarray per blob]} in file order (None for an empty shared-param slot)."""
        return {layer.name: [_array_or_none(b) for b in layer.blobs] for layer in self.layers_with_params()}

    def __repr__(self):
        return f"<Weights {self.path or ''} ({self.format}): {len(self.layers_with_params())} layers with params>"


def detect_format(path):
    """V0_BINARY, V1_BINARY, V2_BINARY or HDF5, from the file's content (HDF5 also by a .h5 suffix)."""
    path = os.fspath(path)
    if path.endswith(".h5") or io.is_hdf5(path):
        return HDF5
    return _binary_layout(path) or V2_BINARY


def load(path, net=None, normalize: bool = True) -> Weights:
    """Read a .caffemodel / .caffemodel.h5 into Weights (upgraded to V2 layers, as Caffe upgrades).

    net: an optional net prototxt (path, text or NetParameter). Layers the file has no type for (all of an
    HDF5 file's) take the net's type, and the layers are put in the net's order, the rest following.
    normalize: rewrite legacy 4-D blob shapes to the shapes Caffe loads them as (see the module docstring).
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    weights = Weights(io.read_weights(path), fmt, path)
    if net is not None:
        weights.param, weights.not_in_net = apply_net(weights.param, net)
    if normalize:
        weights.reshaped, weights.kept_legacy = normalize_shapes(weights.param)
    return weights


def save(param, path, write_diff=None):
    """Write NetParameter `param`: Caffe's HDF5 layout when `path` ends in .h5, else a V2 binary
    .caffemodel. Diffs are written to HDF5 when any blob holds one (or as `write_diff` says)."""
    if isinstance(param, Weights):
        param = param.param
    if os.fspath(path).endswith(".h5"):
        if write_diff is None:
            write_diff = any(len(b.diff) or len(b.double_diff) for layer in param.layer for b in layer.blobs)
        io.write_caffemodel_h5(param, path, write_diff=write_diff)
    else:
        io.write_caffemodel(param, path)


def convert(src, dst, net=None, float32: bool = False) -> Weights:
    """Convert weights file `src` to `dst` (format by dst's suffix) and return the Weights written.

    The output is what Caffe itself would save after loading `src`: V2 `layer` entries with `shape`d
    blobs (legacy shapes normalized by layer type), or data/<layer>/<i> HDF5 datasets. Values are
    copied bit for bit, float32 and float64 (double_data) alike; `float32=True` casts doubles down
    (for readers without double support, such as OpenCV's importer)."""
    weights = load(src, net=net)
    check_values(weights.param, src)
    if float32:
        cast_float32(weights.param)
    save(weights.param, dst)
    return weights


def values_held(blob):
    """(values the BlobProto holds, values its shape needs); a shared param's empty slot holds 0."""
    return len(blob.data) or len(blob.double_data), int(np.prod(io.blob_shape(blob)))


def check_values(param, path):
    """A ValueError naming the blobs of NetParameter `param` whose values do not fill their shapes (a damaged
    file), so that no tool copies them on as if they were whole."""
    damaged = [f"blob {i} of layer '{layer.name}' holds {held:,} values but its shape "
               f"{'x'.join(map(str, io.blob_shape(blob)))} needs {need:,}"
               for layer in param.layer for i, blob in enumerate(layer.blobs)
               for held, need in [values_held(blob)] if held and held != need]
    if damaged:
        raise ValueError(f"{path} is damaged: {'; '.join(damaged[:3])}"
                         + (f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else ""))


# ---- shapes -----------------------------------------------------------------------------------

def caffe_shape(layer_type, index, blob):
    """The shape Caffe gives blob `index` of a `layer_type` layer once loaded into a net; None when the
    stored legacy shape must stay (an unknown type, or dims the type does not allow to drop)."""
    if not is_legacy(blob):
        return tuple(blob.shape.dim)
    n, c, h, w = io.blob_shape(blob)
    if layer_type in ("Convolution", "Deconvolution"):
        if index == 0:
            return (n, c, h, w)          # a 2-D convolution weight is 4-D already
        if index == 1 and n == c == h == 1:
            return (w,)
    elif layer_type == "InnerProduct":
        if index == 0 and n == c == 1:
            return (h, w)
        if index == 1 and n == c == h == 1:
            return (w,)
    return None


def normalize_shapes(param):
    """In place: give legacy blobs the shapes Caffe's loader gives them (caffe_shape), as `shape`.

    Returns (reshaped, kept): (layer, index, stored shape, new shape) for each rewritten blob, and
    (layer, index, stored shape, type) for each legacy blob kept 4-D because its type does not say more.
    """
    reshaped, kept = [], []
    for layer in param.layer:
        for i, blob in enumerate(layer.blobs):
            if not is_legacy(blob):
                continue
            stored = io.blob_shape(blob)
            shape = caffe_shape(layer.type, i, blob)
            if shape is None:
                kept.append((layer.name, i, stored, layer.type))
                continue
            for field in _LEGACY_FIELDS:
                blob.ClearField(field)
            blob.shape.dim[:] = shape
            reshaped.append((layer.name, i, stored, shape))
    return reshaped, kept


def is_legacy(blob):
    """Whether a BlobProto stores its shape in the legacy num/channels/height/width fields."""
    return any(blob.HasField(f) for f in _LEGACY_FIELDS)


def cast_float32(param):
    """In place: store every double_data blob as float32 data (diffs too). Returns the names touched."""
    touched = []
    for layer in param.layer:
        for i, blob in enumerate(layer.blobs):
            if not (len(blob.double_data) or len(blob.double_diff)):
                continue
            data = io.blob_to_array(blob).astype(np.float32)
            has_diff = len(blob.diff) or len(blob.double_diff)
            diff = io.blob_to_array(blob, diff=True).astype(np.float32) if has_diff else None
            new = io.array_to_blob(data, legacy=is_legacy(blob), diff=diff)
            blob.CopyFrom(new)
            touched.append((layer.name, i))
    return touched


# ---- types and order from a net ---------------------------------------------------------------

def apply_net(param, net):
    """Return (a copy of NetParameter `param` with the untyped layers given the type of the same-named layer
    in `net` (a prototxt path, text or NetParameter) and the layers in the net's order, the layers the net
    lacks following in file order; the names of those layers)."""
    net_param = io.read_net(net)
    types = {}
    for layer in net_param.layer:          # a train_test net may name a layer twice (per phase): first wins
        types.setdefault(layer.name, layer.type)
    order = {name: i for i, name in enumerate(types)}
    layers = list(param.layer)
    ranked = sorted(range(len(layers)), key=lambda i: (order.get(layers[i].name, len(order)), i))
    out = pb.NetParameter()
    for field, value in param.ListFields():    # everything but the layers, which follow in the new order
        if field.name != "layer":
            out.MergeFrom(pb.NetParameter(**{field.name: value}))
    for i in ranked:
        layer = out.layer.add()
        layer.CopyFrom(layers[i])
        if not layer.type and layer.name in types:
            layer.type = types[layer.name]
    return out, [layer.name for layer in layers if layer.name not in order]


# ---- solver states ----------------------------------------------------------------------------

def is_solverstate(path):
    return os.fspath(path).endswith(SOLVERSTATE_SUFFIXES)


def load_solverstate(path, weights=None):
    """Read a .solverstate (binary or HDF5). With `weights` (a path or Weights: the net the state belongs
    to), legacy history shapes are normalized to the params' shapes, which Caffe's HDF5 restore demands.
    Returns (SolverState, [(index, stored shape, new shape)])."""
    state = io.read_solverstate(path)
    changes = []
    if weights is not None:
        changes = normalize_history(state, weights if isinstance(weights, Weights) else load(weights))
    return state, changes


def normalize_history(state, weights):
    """In place: reshape legacy history blobs to the shapes of the matching learnable params.

    History blob i belongs to learnable param i: the net's param blobs in layer order. The pairing holds
    when no param is shared, i.e. when the counts agree blob for blob; otherwise a ValueError says so."""
    params = [(layer.name, i, blob) for layer in weights.layers_with_params() for i, blob in enumerate(layer.blobs)]
    if len(params) != len(state.history):
        raise ValueError(f"the solver state has {len(state.history)} history blobs but {weights.path or 'the weights'} "
                         f"holds {len(params)} params; pass the weights of the net this state was saved with")
    changes = []
    for k, (history, (name, i, blob)) in enumerate(zip(state.history, params)):
        stored, target = io.blob_shape(history), io.blob_shape(blob)
        if int(np.prod(stored)) != int(np.prod(target)):
            raise ValueError(f"history blob {k} has shape {stored} but param {i} of layer '{name}' has {target}; "
                             f"these are not the weights this solver state was saved with")
        if is_legacy(history) and stored != target:
            for field in _LEGACY_FIELDS:
                history.ClearField(field)
            history.shape.dim[:] = target
            changes.append((k, stored, target))
    return changes


def save_solverstate(state, path):
    io.write_solverstate(state, path)


# ---- helpers ----------------------------------------------------------------------------------

def _array_or_none(blob):
    empty = not (len(blob.data) or len(blob.double_data)) and int(np.prod(io.blob_shape(blob))) != 0
    return None if empty else io.blob_to_array(blob)


def _binary_layout(path):
    """V0/V1/V2 from the top-level fields of a binary NetParameter, skipping over the blob data rather
    than parsing it; None when the bytes do not walk as protobuf (the reader then says why)."""
    try:
        with open(path, "rb") as f:
            while True:
                tag = _read_varint(f)
                if tag is None:
                    return None
                field, wire = tag >> 3, tag & 7
                if wire == 0:
                    _read_varint(f)
                elif wire == 1:
                    f.seek(8, 1)
                elif wire == 5:
                    f.seek(4, 1)
                elif wire == 2:
                    length = _read_varint(f)
                    if length is None:
                        return None
                    if field == _NET_LAYER_V2:
                        return V2_BINARY
                    if field == _NET_LAYERS_V1:
                        first = _read_varint(f)   # C++ protobuf writes fields in number order: V0's `layer` first
                        return V0_BINARY if first == (_V1_V0_LAYER << 3 | 2) else V1_BINARY
                    f.seek(length, 1)
                else:
                    return None
    except OSError:
        return None


def _read_varint(f):
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            return None


def describe_error(error):
    """A one-line message for the errors reading or writing weights raises (for the command line)."""
    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename}"
    return str(error)


__all__ = [
    "V0_BINARY", "V1_BINARY", "V2_BINARY", "HDF5", "Weights", "CaffeFormatError",
    "detect_format", "load", "save", "convert", "caffe_shape", "normalize_shapes", "is_legacy", "cast_float32",
    "apply_net", "is_solverstate", "load_solverstate", "normalize_history", "save_solverstate",
    "values_held", "check_values",
]

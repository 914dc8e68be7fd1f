"""Read and write Caffe's files: net/solver text, .caffemodel (binary and HDF5), .solverstate.

Everything returns or takes caffe_pb2 messages; nothing here knows about layers at run time.
Readers upgrade legacy content exactly where Caffe does (netspec.upgrade), and every failure
is a CaffeFormatError naming the file (and, for text, line and column). Writers are atomic:
they write a temporary file in the target folder, fsync it and rename it over the target, so
an interrupted snapshot never leaves a half-written model behind.
"""
import contextlib
import errno
import os
import re
import unicodedata
import uuid
from typing import Callable, Tuple, Union

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from netspec import caffe_pb2 as pb
from netspec.errors import CaffeFormatError
from netspec.paths import source_path
from netspec.upgrade import net_needs_upgrade, upgrade_net, upgrade_solver

__all__ = [
    "read_net", "read_solver", "parse_text", "to_text", "write_text",
    "read_caffemodel", "write_caffemodel", "read_caffemodel_h5", "write_caffemodel_h5", "read_weights",
    "read_solverstate", "write_solverstate",
    "blob_shape", "blob_to_array", "array_to_blob", "legacy_shape_equals", "is_hdf5", "atomic_write",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
Path = Union[str, os.PathLike]


# ---- text -------------------------------------------------------------------------------------

def read_net(src: Union[Path, pb.NetParameter]) -> pb.NetParameter:
    """Return the upgraded NetParameter from a path, prototxt text, or a NetParameter (copied)."""
    if isinstance(src, pb.NetParameter):
        return upgrade_net(src)
    text, source = _text_and_source(src)
    return _upgraded(parse_text(text, pb.NetParameter, source), source)


def read_solver(src: Union[Path, pb.SolverParameter]) -> pb.SolverParameter:
    """Return the upgraded SolverParameter from a path, text, or a SolverParameter (copied).

    Inline nets (net_param, train_net_param, test_net_param) are left as written; pass them
    through read_net when building them, as Caffe's solver does with net files.
    """
    if isinstance(src, pb.SolverParameter):
        return upgrade_solver(src)
    text, source = _text_and_source(src)
    return upgrade_solver(parse_text(text, pb.SolverParameter, source), source)


def parse_text(text: str, message_type, source: str = "<text>"):
    """Parse protobuf text into a new `message_type`; errors read `source:line:col: what`."""
    msg = message_type()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        error = _text_error(e, source)
        hint = _invisible_hint(text, error.line)
        if hint:
            error = CaffeFormatError(f"{error} {hint}", source, error.line, error.column, error.field)
        raise error from None
    missing = msg.FindInitializationErrors()  # Caffe's C++ parser rejects missing required fields
    if missing:
        raise CaffeFormatError(f"{source}: {msg.DESCRIPTOR.name} is missing required field(s): "
                               f"{', '.join(missing)}", source, field=missing[0])
    return msg


def to_text(msg) -> str:
    """The protobuf text form of `msg`, as Caffe writes .prototxt files."""
    return text_format.MessageToString(msg)


def write_text(msg, path: Path) -> None:
    """Write `msg` as protobuf text to `path` (atomically)."""
    _atomic_write_bytes(path, to_text(msg).encode("utf-8"))


def _text_and_source(src):
    """Return (text, source name) for `src`: a path (str or PathLike) or inline prototxt text, as
    netspec.paths.source_path tells them apart. A missing file is a FileNotFoundError naming it, not a parse error.
    """
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"expected a path, prototxt text or message, got {type(src).__name__}")
    path = source_path(src)
    if path is None:
        return src, "<text>"
    if isinstance(src, os.PathLike) or os.path.exists(path):
        return _read_text_file(path), path
    raise FileNotFoundError(errno.ENOENT, f"no such file: {src!r} (and it is not prototxt text)", src)


def _read_text_file(path):
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        hint = _binary_hint(data) or "a binary .caffemodel is read with read_caffemodel"
        raise CaffeFormatError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); {hint}", path) from None


_LOCATION = re.compile(r"^\d+:\d+ : ")
_QUOTED_LINE = re.compile(r"^'.*?': ")  # protobuf repeats the offending line; we give line:col
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')


def _text_error(e, source):
    detail = _QUOTED_LINE.sub("", _LOCATION.sub("", str(e)))
    line, column = e.GetLine(), e.GetColumn()
    where = f"{source}:{line}:{column}" if line is not None else source
    match = _UNKNOWN_FIELD.search(detail)
    field = match.group(1) if match else None
    if field:
        detail += f" (unknown field '{field}': check its spelling and the message it sits in)"
    return CaffeFormatError(f"{where}: {detail}", source, line, column, field)


def _invisible_hint(text, line):
    """Name the invisible characters (a byte-order mark, a no-break or zero-width space) on the line of a parse
    error, which the error itself shows as nothing; '' when there are none."""
    lines = text.split("\n")
    if line is None or not 1 <= line <= len(lines):
        return ""
    found = dict.fromkeys(c for c in lines[line - 1] if c != " " and unicodedata.category(c) in ("Cf", "Zs"))
    if not found:
        return ""
    names = ", ".join(f"U+{ord(c):04X} ("
                      f"{'a byte-order mark' if c == chr(0xFEFF) else unicodedata.name(c, 'unnamed').lower()})"
                      for c in found)
    return (f"(line {line} holds invisible character(s) {names}: save the file as plain UTF-8 without a byte-order "
            f"mark, with ordinary spaces)")


# ---- binary messages --------------------------------------------------------------------------

def read_caffemodel(path: Path) -> pb.NetParameter:
    """Return the upgraded NetParameter of a binary .caffemodel (V0/V1 files become V2)."""
    path = os.fspath(path)
    net = _parse_binary(path, pb.NetParameter, "NetParameter (.caffemodel)")
    if not len(net.layer) and not len(net.layers):
        size = os.path.getsize(path)
        why = "the file is empty" if size == 0 else (_binary_hint(_read_bytes(path)) or "not a .caffemodel?")
        raise CaffeFormatError(f"{path}: parsed as a NetParameter with no layers ({size} bytes): {why}", path)
    return _upgraded(net, path)


def _upgraded(net, source):
    # upgrade_net copies; a freshly parsed current-format net (maybe 500 MB of VGG) needs no copy.
    return upgrade_net(net, source) if net_needs_upgrade(net) else net


def write_caffemodel(net_param: pb.NetParameter, path: Path) -> None:
    """Write NetParameter `net_param` as a binary .caffemodel (atomically)."""
    _check_type(net_param, pb.NetParameter)
    _atomic_write_bytes(path, net_param.SerializeToString())


def read_solverstate(path: Path) -> pb.SolverState:
    """Return the SolverState of a .solverstate: binary protobuf, or Caffe's HDF5 layout. An empty file, or one
    holding no solver state (a .caffemodel renamed, say), is a CaffeFormatError saying what it is."""
    path = os.fspath(path)
    if is_hdf5(path):
        return _read_solverstate_h5(path)
    state = _parse_binary(path, pb.SolverState, "SolverState (.solverstate)")
    if not state.ListFields():
        data = _read_bytes(path)
        if not data:
            raise CaffeFormatError(f"{path}: the file is empty (0 bytes), not a solver state (an interrupted copy "
                                   f"or write?)", path)
        net = pb.NetParameter()
        with contextlib.suppress(DecodeError):
            net.ParseFromString(data)
        if len(net.layer) or len(net.layers):
            raise CaffeFormatError(f"{path}: holds a net's weights (a .caffemodel: NetParameter "
                                   f"{net.name!r}, {len(net.layer) or len(net.layers)} layers), not a solver state",
                                   path)
        raise CaffeFormatError(f"{path}: holds no solver state (no iter, learned_net or history in its "
                               f"{len(data)} bytes): {_binary_hint(data) or 'not a .solverstate'}", path)
    return state


def write_solverstate(state: pb.SolverState, path: Path) -> None:
    """Write SolverState `state` atomically: HDF5 layout if `path` ends in .h5, else binary."""
    _check_type(state, pb.SolverState)
    if os.fspath(path).endswith(".h5"):
        atomic_write(path, lambda tmp: _write_solverstate_h5(state, tmp))
    else:
        _atomic_write_bytes(path, state.SerializeToString())


def _parse_binary(path, message_type, what):
    data = _read_bytes(path)
    msg = message_type()
    try:
        msg.ParseFromString(data)
    except DecodeError as e:
        hint = _binary_hint(data) or "the file is truncated (incomplete download or copy?) or is not a binary protobuf"
        raise CaffeFormatError(f"{path}: cannot decode a binary {what} from its {len(data)} bytes "
                               f"({e}): {hint}", path) from None
    return msg


def _binary_hint(data):
    """Say what a file that is not the expected binary protobuf seems to be, or ''."""
    if data.startswith(HDF5_SIGNATURE):
        return "it is an HDF5 file; read it with read_caffemodel_h5 (or read_weights)"
    head = data[:4096]
    if head and not any(b < 9 or 13 < b < 32 for b in head):
        return "it looks like text; a .prototxt is read with read_net or read_solver"
    return ""


# ---- HDF5 weights (Net::ToHDF5 / CopyTrainedLayersFromHDF5) -----------------------------------

def read_caffemodel_h5(path: Path) -> pb.NetParameter:
    """Return a NetParameter holding the weights of a .caffemodel.h5 (data/<layer>/<i>).

    HDF5 weights keep neither layer order nor types: layers come back in the file's name
    order with `name` and `blobs` only (and blob diffs from diff/<layer>/<i> when saved).
    Weights are matched to a net by layer name, as Caffe does.
    """
    path = os.fspath(path)
    _require_hdf5(path)
    with _reading_h5(path) as f:
        if "data" not in f or not hasattr(f["data"], "items"):
            raise CaffeFormatError(f"{path}: no 'data' group, so not Caffe HDF5 weights "
                                   f"(expected data/<layer>/<blob index>)", path)
        diffs = f["diff"] if "diff" in f else {}
        net = pb.NetParameter()
        for name, group in f["data"].items():
            layer = net.layer.add(name=name)
            diff_group = diffs[name] if name in diffs else {}
            for key in _blob_keys(group, path, name):
                blob = layer.blobs.add()
                if key is None:
                    continue  # a shared param that only its owner layer saved; left empty
                diff = diff_group[key][()] if key in diff_group else None
                blob.CopyFrom(array_to_blob(_float_array(group[key][()]), diff=diff))
    return net


def write_caffemodel_h5(net_param: pb.NetParameter, path: Path, write_diff: bool = False) -> None:
    """Write the blobs of `net_param` as Caffe's Net::ToHDF5 does (atomically).

    One group data/<layer name> per layer (empty for layers without blobs) holding one dataset
    per blob named by its index, float32 (float64 for double_data blobs), contiguous and
    uncompressed like H5LTmake_dataset. With `write_diff` a parallel diff/ tree holds the diffs.
    """
    _check_type(net_param, pb.NetParameter)
    layers = list(net_param.layer)
    seen = set()
    for layer in layers:
        if not layer.name or "/" in layer.name or layer.name in seen:
            raise ValueError(f"cannot write HDF5 weights: layer name {layer.name!r} is empty, repeated or "
                             f"contains '/' (HDF5 weights are keyed by layer name)")
        seen.add(layer.name)

    def write(tmp):
        with _h5py().File(tmp, "w") as f:
            data = f.create_group("data")
            diff = f.create_group("diff") if write_diff else None
            for layer in layers:
                group = data.create_group(layer.name)
                diff_group = diff.create_group(layer.name) if write_diff else None
                for i, blob in enumerate(layer.blobs):
                    if not (len(blob.data) or len(blob.double_data)):
                        continue  # a shared param: Caffe saves it under its owner layer only
                    values = blob_to_array(blob)
                    group.create_dataset(str(i), data=values)
                    if write_diff:
                        has_diff = len(blob.diff) or len(blob.double_diff)
                        grad = blob_to_array(blob, diff=True) if has_diff else np.zeros_like(values)
                        diff_group.create_dataset(str(i), data=grad)

    atomic_write(path, write)


def read_weights(path: Path) -> pb.NetParameter:
    """Read weights from a .caffemodel or .caffemodel.h5, choosing by content as Caffe does
    (H5Fis_hdf5), or by the .h5 suffix so that a damaged HDF5 file gets the HDF5 error."""
    path = os.fspath(path)
    if path.endswith(".h5") or is_hdf5(path):
        return read_caffemodel_h5(path)
    return read_caffemodel(path)


def _blob_keys(group, path, layer_name):
    """Dataset names "0".."n-1" in index order; None marks an index absent from the file."""
    try:
        indices = sorted(int(k) for k in group.keys())
    except ValueError:
        raise CaffeFormatError(f"{path}: data/{layer_name} holds {sorted(group.keys())}; "
                               f"expected datasets named 0, 1, ... (one per blob)", path) from None
    present = set(indices)
    return [str(i) if i in present else None for i in range(indices[-1] + 1)] if indices else []


def _float_array(values):
    values = np.asarray(values)
    return values if values.dtype == np.float64 else values.astype(np.float32, copy=False)


# ---- HDF5 solver state (SGDSolver::SnapshotSolverStateToHDF5) ---------------------------------

def _read_solverstate_h5(path):
    with _reading_h5(path) as f:
        for key in ("iter", "history"):
            if key not in f:
                raise CaffeFormatError(f"{path}: HDF5 solver state without '{key}' "
                                       f"(expected iter, learned_net, current_step, history/<i>)", path)
        state = pb.SolverState(iter=int(np.ravel(f["iter"][()])[0]))
        if "learned_net" in f:
            name = f["learned_net"][()]
            state.learned_net = name.rstrip(b"\0").decode("utf-8") if isinstance(name, bytes) else str(name)
        if "current_step" in f:
            state.current_step = int(np.ravel(f["current_step"][()])[0])
        history = f["history"]
        for i in range(len(history)):
            if str(i) not in history:
                raise CaffeFormatError(f"{path}: history/{i} missing; history datasets must be 0..n-1", path)
            state.history.add().CopyFrom(array_to_blob(_float_array(history[str(i)][()])))
    return state


def _write_solverstate_h5(state, tmp):
    h5py = _h5py()
    with h5py.File(tmp, "w") as f:
        # hdf5_save_int writes a 1-element int32 dataset; hdf5_save_string a NUL-terminated C string.
        f.create_dataset("iter", data=np.array([state.iter], dtype=np.int32))
        _save_c_string(f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], dtype=np.int32))
        history = f.create_group("history")
        for i, blob in enumerate(state.history):
            history.create_dataset(str(i), data=blob_to_array(blob))


def _save_c_string(f, name, text):
    h5py = _h5py()
    raw = text.encode("utf-8")
    kind = h5py.h5t.C_S1.copy()
    kind.set_size(len(raw) + 1)
    kind.set_strpad(h5py.h5t.STR_NULLTERM)
    dataset = h5py.h5d.create(f.id, name.encode(), kind, h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f"S{len(raw) + 1}"))


@contextlib.contextmanager
def _reading_h5(path):
    """h5py.File(path, "r"), with h5py's OSError for a damaged file turned into CaffeFormatError."""
    try:
        with _h5py().File(path, "r") as f:
            yield f
    except OSError as e:
        raise CaffeFormatError(f"{path}: cannot read it as HDF5 ({e}); the file is damaged or truncated",
                               path) from None


def _h5py():
    import h5py  # imported late: text and binary I/O work without it
    return h5py


def is_hdf5(path: Path) -> bool:
    """Whether `path` is an HDF5 file, as Caffe's H5Fis_hdf5 decides: the signature, or one after a user block."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a file")
    with open(path, "rb") as f:  # also raises FileNotFoundError naming a missing path
        head = f.read(len(HDF5_SIGNATURE))
    return head == HDF5_SIGNATURE or _h5py().is_hdf5(path)  # is_hdf5 also finds a user block


def _require_hdf5(path):
    if not is_hdf5(path):
        with open(path, "rb") as f:
            hint = _binary_hint(f.read(4096)) or "a binary .caffemodel is read with read_caffemodel"
        raise CaffeFormatError(f"{path}: not an HDF5 file (no HDF5 signature); {hint}", path)


# ---- blobs ------------------------------------------------------------------------------------

def blob_shape(blob: pb.BlobProto) -> Tuple[int, ...]:
    """The shape Caffe's Blob::FromProto gives `blob`: legacy (num, channels, height, width) when
    any of those is set, else `shape.dim`."""
    if _has_legacy_shape(blob):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_to_array(blob: pb.BlobProto, diff: bool = False, shape=None) -> np.ndarray:
    """The values of BlobProto `blob` as a new ndarray.

    float64 from double_data when it is present, else float32 from data (`diff=True`: from
    double_diff / diff). The shape is blob_shape(blob); with `shape`, the blob must match it
    as Caffe's Blob::ShapeEquals allows (legacy blobs right-aligned) and the array takes it.
    """
    doubles, floats = (blob.double_diff, blob.diff) if diff else (blob.double_data, blob.data)
    values = np.array(doubles, dtype=np.float64) if len(doubles) else np.array(floats, dtype=np.float32)
    stored = blob_shape(blob)
    count = int(np.prod(stored, dtype=np.int64))
    if values.size != count:
        what = "diff" if diff else "data"
        raise CaffeFormatError(f"blob {what} holds {values.size} values but its shape {stored} needs {count}")
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if not legacy_shape_equals(blob, shape):
            raise ValueError(f"blob shape {stored} does not match the expected shape {shape}")
        return values.reshape(shape)
    return values.reshape(stored)


def array_to_blob(arr, legacy: bool = False, diff=None) -> pb.BlobProto:
    """A BlobProto holding `arr` (and `diff`, if given): float64 arrays go to double_data /
    double_diff, anything else to float32 data / diff. The shape goes to `shape`, or with
    `legacy=True` to num/channels/height/width, left-padded with 1s to 4-D as old Caffe did."""
    values = np.asarray(arr)
    blob = pb.BlobProto()
    if legacy:
        if values.ndim > 4:
            raise ValueError(f"a legacy blob has at most 4 axes; got shape {values.shape}")
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - values.ndim) + values.shape
    else:
        blob.shape.dim.extend(values.shape)
    _append_packed(blob, values, data_field=True)
    if diff is not None:
        grad = np.asarray(diff)
        if grad.size != values.size:
            raise ValueError(f"diff has {grad.size} values but data has {values.size}")
        _append_packed(blob, grad, data_field=False)
    return blob


# Field numbers of BlobProto's packed value fields: (float32, float64) for data and for diff.
_PACKED_FIELDS = {True: (5, 8), False: (6, 9)}


def _append_packed(blob, values, data_field):
    """Store values by merging their packed wire encoding: one memcpy instead of a Python loop
    (extend() over a VGG-sized array takes tens of seconds)."""
    single, double = _PACKED_FIELDS[data_field]
    if values.dtype == np.float64:
        number, raw = double, values.astype("<f8", copy=False).tobytes()
    else:
        number, raw = single, values.astype("<f4", copy=False).tobytes()
    if raw:
        blob.MergeFromString(_varint((number << 3) | 2) + _varint(len(raw)) + raw)


def _varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def legacy_shape_equals(proto_shape_or_blob, shape) -> bool:
    """Caffe's Blob::ShapeEquals(BlobProto): may a stored blob be loaded into a blob of `shape`?

    A legacy blob (num/channels/height/width set) matches when `shape` has at most 4 axes and,
    left-padded with 1s to 4-D, equals (num, channels, height, width): a bias (1, 1, 1, N)
    matches (N,), an old InnerProduct weight (1, 1, M, K) matches (M, K). Otherwise the dims
    must be equal. Accepts a BlobProto, a BlobShape or a plain sequence of dims.
    """
    shape = tuple(int(d) for d in shape)
    other = proto_shape_or_blob
    if isinstance(other, pb.BlobProto):
        if _has_legacy_shape(other):
            return len(shape) <= 4 and (1,) * (4 - len(shape)) + shape == blob_shape(other)
        other = other.shape
    dims = other.dim if isinstance(other, pb.BlobShape) else other
    return tuple(int(d) for d in dims) == shape


def _has_legacy_shape(blob):
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


# ---- files ------------------------------------------------------------------------------------

def _read_bytes(path):
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a file")
    with open(path, "rb") as f:  # a missing file raises FileNotFoundError naming it
        return f.read()


def _check_type(msg, message_type):
    if not isinstance(msg, message_type):
        raise TypeError(f"expected a caffe_pb2.{message_type.__name__}, got {type(msg).__name__}")


def _atomic_write_bytes(path, data):
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, write)


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(tmp) for a fresh temporary path beside `path`, fsync it, rename it over `path`.

    The temporary file lives in the target folder so that os.replace is a same-filesystem
    rename: readers see the old file or the new one, never a partial one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable; not every FS allows it
        _fsync(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync(path, flags):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

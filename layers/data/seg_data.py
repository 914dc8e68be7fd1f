"""What FCN's segmentation data layers share (cf. the reference voc_layers.py and its siblings).

One implementation serves both ways of naming a data layer in a prototxt:
  type: "Python"  python_param { module: "voc_layers" layer: "VOCSegDataLayer" param_str: "{...}" }
  type: "VOCSegData"  python_param { param_str: "{...}" }        (the native type; NetSpec: L.VOCSegData(...))
Either way the class is built as pycaffe builds a Python layer, `cls(layer_param)`, and reads `self.param_str`,
which defaults to `layer_param.python_param.param_str` (the Python-layer wrapper may also set it).

The order of samples is the reference's: in random mode `random.seed(seed)` then one `random.randint(0, N-1)` at
setup and one after every forward (sampling with replacement, no epochs); otherwise the split in file order,
wrapping around. Random mode is switched off for any split whose name lacks 'train', so evaluation is
deterministic. A private random.Random(seed) gives the same sequence as the reference's global one.
Batch 1, native size: reshape loads the current sample and shapes every top (1, C, H, W).
"""
import ast
import os
import random

import numpy
from PIL import Image

from layers.base import Layer
from layers.image_io import ImageError, read_rgb


def parse_param_str(layer, text, required=(), optional=None):
    """The param_str as a dict: a Python dict literal (ast.literal_eval, never eval), keys checked."""
    optional = optional or {}
    try:
        params = ast.literal_eval(text) if text.strip() else {}
    except (ValueError, SyntaxError) as e:
        raise layer.error(f"param_str must be a Python dict literal such as \"{{'split': 'train', 'seed': 1337}}\" "
                          f"(only literals: no dict(...), names or expressions); cannot parse {text!r}: {e}") from None
    if not isinstance(params, dict):
        raise layer.error(f"param_str must be a dict literal, got a {type(params).__name__}: {text!r}")
    missing = [k for k in required if k not in params]
    if missing and not text.strip():
        raise layer.error(f"needs its parameters as python_param {{ param_str: \"{{...}}\" }}, a dict literal with "
                          f"keys {', '.join(required)}")
    if missing:
        raise layer.error(f"param_str lacks {', '.join(repr(k) for k in missing)} (it needs "
                          f"{', '.join(required)}); got {text!r}")
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        known = ", ".join(list(required) + sorted(optional))
        raise layer.error(f"param_str has unknown key(s) {', '.join(repr(k) for k in unknown)}; known keys: {known}")
    return {**optional, **params}


def read_split(layer, path):
    """Sample ids, one a line (the reference's read().splitlines(); blank lines are skipped)."""
    if not os.path.isfile(path):
        raise layer.error(f"split file {path} not found ({layer.searched()})")
    with open(path) as f:
        ids = [line.strip() for line in f.read().splitlines() if line.strip()]
    if not ids:
        raise layer.error(f"split file {path} lists no ids")
    return ids


def open_image(layer, path):
    if not os.path.isfile(path):
        raise layer.error(f"image {path} not found")
    return Image.open(path)


def load_bgr(layer, path, mean):
    """An image as Caffe wants it: float32, RGB -> BGR, minus the BGR mean, C x H x W (range 0-255). Grey and
    palette images give three equal channels; 16-bit samples keep their high byte (layers.image_io.read_rgb)."""
    if not os.path.isfile(path):
        raise layer.error(f"image {path} not found")
    try:
        rgb = read_rgb(path)
    except ImageError as e:
        raise layer.error(f"image {e}") from None
    in_ = numpy.array(rgb, dtype=numpy.float32)[:, :, ::-1]
    in_ -= mean
    return in_.transpose(2, 0, 1)


def load_mat(layer, path, key):
    import scipy.io
    if not os.path.isfile(path):
        raise layer.error(f"label file {path} not found")
    mat = scipy.io.loadmat(path)
    if key not in mat:
        raise layer.error(f"{path} has no variable '{key}' (it has: "
                          f"{', '.join(k for k in mat if not k.startswith('__'))})")
    return mat[key]


class SegDataLayer(Layer):
    """Base of the dataset layers: param_str, split, sampling order, and reshape/forward of the tops.

    Subclasses set `required`/`optional` (param_str keys with defaults), implement `setup_dataset(params, top)`
    returning the split file path, and `load(sample_id)` returning one array per top (without the batch axis).
    """
    exact_num_bottom = 0
    required = ()
    optional = {}
    deterministic_unless_train = True          # the reference's rule: random order only for a 'train' split

    def __init__(self, param, phase="TEST"):
        super().__init__(param, phase)
        self.param_str = param.python_param.param_str

    def setup(self, bottom, top):
        params = parse_param_str(self, self.param_str, self.required, {"randomize": True, "seed": None,
                                                                        **self.optional})
        for key, value in params.items():       # dataset folders are relative to the solver/prototxt folder
            if key.endswith("_dir") and isinstance(value, str):
                params[key] = self.resolve_path(value)
        self.split = params.get("split")
        self.seed = params["seed"]
        self.indices = read_split(self, self.setup_dataset(params, top))
        self.random = bool(params["randomize"])
        if self.deterministic_unless_train and "train" not in str(self.split):
            self.random = False                # make evaluation deterministic, as the reference does
        self.idx = 0
        if self.random:
            self.rng = random.Random(self.seed)
            self.idx = self.rng.randint(0, len(self.indices) - 1)
        self._loaded = None                    # (idx, arrays) of the sample reshape loaded last

    def setup_dataset(self, params, top):
        raise NotImplementedError

    def load(self, sample_id):
        raise NotImplementedError

    def reshape(self, bottom, top):
        # Caffe reshapes before every forward; load each sample once even so
        if self._loaded is None or self._loaded[0] != self.idx:
            self._loaded = (self.idx, self.load(self.indices[self.idx]))
        for blob, array in zip(top, self._loaded[1]):
            blob.reshape(1, *array.shape)

    def forward(self, bottom, top):
        for blob, array in zip(top, self._loaded[1]):
            blob.data[...] = blob.xp.asarray(array)
        self.advance()

    def advance(self):
        """Pick the next sample: a fresh randint (with replacement), or the next line, wrapping."""
        if self.random:
            self.idx = self.rng.randint(0, len(self.indices) - 1)
        else:
            self.idx = (self.idx + 1) % len(self.indices)

    def fast_forward(self, batches):
        """Skip `batches` forward passes exactly as that many forwards would (a solver restoring a snapshot calls
        this, so that a resumed run reads what an uninterrupted one would have). Nothing is loaded: loading draws
        nothing from the generator here."""
        for _ in range(int(batches)):
            self.advance()

    def backward(self, top, propagate_down, bottom):
        pass

    def check_tops(self, top, names):
        if len(top) != len(names):
            raise self.error(f"needs {len(names)} top blob(s) ({', '.join(names)}), got {len(top)}")

    @property
    def current_id(self):
        """The id of the sample the next forward will produce."""
        return self.indices[self.idx]

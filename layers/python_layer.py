"""Python layer ("Python"): a layer written in Python by the user, named by
`python_param { module: "m" layer: "Class" param_str: "..." }`. Semantics: caffe python_layer.hpp + pycaffe.

The class is pycaffe's contract: it subclasses caffe.Layer (`from layers import caffe_compat as caffe`), is
built as Class(layer_param), gets self.param_str and self.phase (caffe.TRAIN/caffe.TEST), then its setup,
reshape, forward and backward(top, propagate_down, bottom) run with our Blobs. A subclass of this engine's
own layers.Layer (the bundled data layers) works as well: it is built as Class(layer_param, phase).

The module is looked for, in order:
  1. beside the prototxt the Net was built from (<folder>/m.py or the package <folder>/m/), loaded from that
     file without touching sys.path; the modules it imports itself come from sys.path as usual;
  2. on sys.path (a plain `import m`, as pycaffe does);
  3. in the bundled data layers, layers.data.m (so the reference FCN prototxts' module "voc_layers" runs as is).
"""
import importlib
import importlib.util
import os
import sys

from layers import caffe_compat
from layers.base import Layer
from layers.registry import register

_FILE_MODULES = {}          # modules loaded from a prototxt's folder, by real path: each file runs once
# what a module written for pycaffe (`import caffe`) needs here
PYCAFFE_HINT = ("for `import caffe` to give this engine, call fcn_caffe.install() before building the net (or run "
                "the script with python -m fcn_caffe), or write `from layers import caffe_compat as caffe`")


def _import(name):
    """import `name`, or None when it (or its package) does not exist; errors inside it propagate."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise


def _module_file(folder, module):
    base = os.path.join(folder, *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return os.path.realpath(path)
    return None


def _load_file(module, path):
    if path in _FILE_MODULES:
        return _FILE_MODULES[path]
    package = [os.path.dirname(path)] if os.path.basename(path) == "__init__.py" else None
    spec = importlib.util.spec_from_file_location(module, path, submodule_search_locations=package)
    mod = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module)
    sys.modules[module] = mod                # visible while it runs (dataclasses, pickle need that), then restored
    try:
        spec.loader.exec_module(mod)
    finally:
        if previous is None:
            sys.modules.pop(module, None)
        else:
            sys.modules[module] = previous
    _FILE_MODULES[path] = mod
    return mod


def find_layer_class(layer, module, class_name, folder=None):
    """The class `class_name` of `module`, looked up as the module docstring says; `layer` words the errors."""
    looked = []
    candidates = []
    if folder:
        looked.append(f"the prototxt's folder {folder}")
        path = _module_file(folder, module)
        if path:
            candidates.append((path, lambda: _load_file(module, path)))
    looked.append("sys.path")
    candidates.append((module, lambda: _import(module)))
    looked.append("the bundled package layers.data")
    candidates.append((f"layers.data.{module}", lambda: _import(f"layers.data.{module}")))
    mod = where = None
    for where, load in candidates:
        try:
            mod = load()
        except Exception as e:
            hint = (f"; {PYCAFFE_HINT}" if isinstance(e, ModuleNotFoundError) and e.name and
                    e.name.split(".")[0] == "caffe" else "")
            raise layer.error(f"importing module '{module}' (python_param.module) from {where} failed: "
                              f"{type(e).__name__}: {e}{hint}") from e
        if mod is not None:
            break
    if mod is None:
        hint = " (name the module without '.py')" if module.endswith(".py") else ""
        raise layer.error(f"cannot find module '{module}'{hint} for class '{class_name}'; looked in "
                          f"{', '.join(looked)}")
    cls = getattr(mod, class_name, None)
    if cls is None:
        defined = sorted(n for n, v in vars(mod).items() if isinstance(v, type) and v.__module__ == mod.__name__)
        raise layer.error(f"module '{module}' ({getattr(mod, '__file__', where)}) has no class '{class_name}' "
                          f"(python_param.layer); it defines: {', '.join(defined) or 'no classes'}")
    if not (isinstance(cls, type) and issubclass(cls, (caffe_compat.Layer, Layer))):
        raise layer.error(f"'{class_name}' in module '{module}' must be a class derived from caffe.Layer; "
                          f"{PYCAFFE_HINT}")
    return cls


@register("Python")
class PythonLayer(Layer):
    """Drives the user's class; attributes it lacks are looked up on the user's layer object (`impl`)."""

    @property
    def phase(self):
        """caffe.TRAIN or caffe.TEST, an int, as pycaffe's net.layers[i] (the user's object) shows it."""
        return caffe_compat.Phase[self._phase]

    @phase.setter
    def phase(self, phase):
        self._phase = phase if isinstance(phase, str) else caffe_compat.Phase(phase).name

    def setup(self, bottom, top):
        p = self.param.python_param
        if not p.module or not p.layer:
            raise self.error("python_param needs both `module` (a Python module name) and `layer` (a class in it)")
        cls = find_layer_class(self, p.module, p.layer, self.source_dir)
        if issubclass(cls, Layer):                  # one of this engine's layers (the bundled data layers)
            self.impl = cls(self.param, self._phase)
            self.impl.param_str = p.param_str
            self.impl.check_blob_counts(bottom, top)
        else:
            self.impl = cls(self.param)
            self.impl.param_str = p.param_str
            self.impl.phase = self.phase
            if not isinstance(getattr(self.impl, "blobs", None), caffe_compat.BlobVec):
                self.impl.blobs = caffe_compat.BlobVec()      # a user __init__ that skipped super().__init__
            if bottom or top:
                self.impl.blobs.dtype = (bottom or top)[0].dtype     # params in the net's dtype
        self.blobs = self.impl.blobs                # one list: the Net sees the params the class adds
        if isinstance(self.impl, Layer):            # engine-layer classes resolve data paths as the net says
            self.impl.base_dir, self.impl.source_dir = self.base_dir, self.source_dir
        self.impl.setup(bottom, top)

    def reshape(self, bottom, top):
        self.impl.reshape(bottom, top)

    def forward(self, bottom, top):
        self.impl.forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        self.impl.backward(top, list(propagate_down), bottom)

    def allow_force_backward(self, bottom_index):
        impl = self.__dict__.get("impl")
        return impl.allow_force_backward(bottom_index) if isinstance(impl, Layer) else True

    def __getattr__(self, name):
        # only reached for attributes the wrapper lacks: net.layer_dict['data'].indices reads the user's object,
        # as pycaffe's net.layers[i] is that object
        impl = self.__dict__.get("impl")
        if impl is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(impl, name)

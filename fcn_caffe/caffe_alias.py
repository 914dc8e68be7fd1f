"""`import caffe` as this package: install() makes `caffe` and its submodules (caffe.io, caffe.draw, caffe.proto,
caffe.proto.caffe_pb2, caffe.net_spec, caffe.coord_map, caffe.pycaffe, caffe.classifier, caffe.detector,
caffe._caffe) names of fcn_caffe's modules in sys.modules, so every module of the process that imports caffe, now
or later (a script, FCN's surgery.py and score.py, a Python layer's module), gets this package."""
import importlib
import sys

SUBMODULES = ("_caffe", "pycaffe", "io", "draw", "classifier", "detector", "net_spec", "coord_map", "proto",
              "proto.caffe_pb2")


def _modules():
    yield "caffe", importlib.import_module("fcn_caffe")
    for name in SUBMODULES:
        yield f"caffe.{name}", importlib.import_module(f"fcn_caffe.{name}")


def install():
    """Make `import caffe` give fcn_caffe in every module of this process (a caffe imported before is replaced)."""
    for name, module in _modules():
        sys.modules[name] = module


def uninstall():
    """Undo install(): `import caffe` finds whatever it found before."""
    for name, module in _modules():
        if sys.modules.get(name) is module:
            del sys.modules[name]

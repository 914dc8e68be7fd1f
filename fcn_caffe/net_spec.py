"""caffe.net_spec: write Caffe nets in Python (pycaffe's net_spec.py API), on the engine's netspec.spec.

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 500, 500]))
    n.conv1 = L.Convolution(n.data, num_output=64, kernel_size=3, pad=100)
    print(n.to_proto())           # the prototxt pycaffe prints for the same calls

Where pycaffe fails (keyword arguments of Deconvolution outside convolution_param, an empty list), this writes what
was meant; misuse raises what pycaffe raises: a TypeError naming a bottom that is not a Top, a KeyError (that is
also an AttributeError) for a top the NetSpec lacks.
"""
from netspec import caffe_pb2  # noqa: F401 (pycaffe's net_spec module has it)
from netspec.spec import (Function, Layers, NetSpec, Parameters, Top, assign_proto, layers, params,  # noqa: F401
                          to_proto)
from netspec.spec import param_name_dict as _param_fields


def param_name_dict():
    """{layer type: its parameter message's field name without "_param"}: {'Convolution': 'convolution', ...}."""
    return {type_name: field[:-len("_param")] for type_name, field in _param_fields().items()}


_param_names = param_name_dict()

"""netspec: Caffe's schema (caffe_pb2) and the pure protobuf layer of fcn-caffe.

Reading and writing Caffe's files (io), legacy upgrades (upgrade), phase/stage filtering
(rules), split insertion (splits), and Caffe's NetSpec DSL (spec: NetSpec, L = layers, P = params) with crop
offsets computed from the graph (coord_map). Everything works on caffe_pb2 messages and returns new ones; nothing
here builds layers or touches arrays beyond blob conversion.
"""
from netspec import caffe_pb2
from netspec.errors import CaffeFormatError, NetDefinitionError
from netspec.io import (
    array_to_blob, blob_shape, blob_to_array, legacy_shape_equals, parse_text, read_caffemodel,
    read_caffemodel_h5, read_net, read_solver, read_solverstate, read_weights, to_text,
    write_caffemodel, write_caffemodel_h5, write_solverstate, write_text,
)
from netspec.rules import filter_net, state_meets_rule
from netspec.splits import insert_splits
from netspec.upgrade import upgrade_net, upgrade_solver
from netspec.spec import NetSpec, Top, Function, layers, params, to_proto, layers as L, params as P

__all__ = [
    "caffe_pb2", "CaffeFormatError", "NetDefinitionError",
    "read_net", "read_solver", "parse_text", "to_text", "write_text",
    "read_caffemodel", "write_caffemodel", "read_caffemodel_h5", "write_caffemodel_h5", "read_weights",
    "read_solverstate", "write_solverstate",
    "blob_shape", "blob_to_array", "array_to_blob", "legacy_shape_equals",
    "filter_net", "state_meets_rule", "insert_splits", "upgrade_net", "upgrade_solver",
    "NetSpec", "Top", "Function", "layers", "params", "to_proto", "L", "P",
]

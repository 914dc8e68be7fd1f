"""caffe.proto.caffe_pb2 is this engine's schema module, netspec.caffe_pb2 (Caffe's messages, field numbers and
defaults): the same module object, so messages made through either name are one type."""
import sys

from netspec import caffe_pb2

sys.modules[__name__] = caffe_pb2

"""caffe.proto: Caffe's message classes, as pycaffe's generated caffe.proto.caffe_pb2."""
from fcn_caffe.proto import caffe_pb2  # noqa: F401

"""The runtime: Blob, backend, Layer base and registry, the Net, and one module per Caffe layer type.

Every layer module is imported here explicitly so that its @register runs.
"""
from layers import backend
from layers.blob import Blob
from layers.base import Layer, LossLayer
from layers.registry import create_layer, known_types, register

from layers import convolution, inner_product, input, pooling, relu, softmax, softmax_with_loss, split  # noqa: F401
from layers import bias, concat, crop, deconvolution, dropout, dummy_data, eltwise, flatten, reshape, scale, silence  # noqa: F401
from layers import accuracy, argmax, exp, log, lrn, power, python_layer, threshold  # noqa: F401
from layers import data  # noqa: F401

from layers import hdf5_data  # noqa: F401
from layers import data_layer, image_data, memory_data  # noqa: F401
from layers import contrastive_loss, euclidean_loss, hinge_loss, infogain_loss, multinomial_logistic_loss  # noqa: F401
from layers import im2col_layer, lstm, lstm_unit, rnn, sigmoid_cross_entropy_loss, spp  # noqa: F401
from layers import absval, bnll, clip, elu, prelu, sigmoid, swish, tanh  # noqa: F401
from layers import batch_norm, batch_reindex, embed, filter, hdf5_output, mvn, parameter, reduction, slice, tile  # noqa: F401

from layers.net import Net  # noqa: E402

__all__ = ["Blob", "Layer", "LossLayer", "Net", "backend", "create_layer", "known_types", "register"]

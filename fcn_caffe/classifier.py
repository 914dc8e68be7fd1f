"""caffe.Classifier: a Net that classifies images, with center or ten-crop oversampled prediction
(cf. python/caffe/classifier.py)."""
import numpy

from fcn_caffe import io
from fcn_caffe.proto import caffe_pb2
from fcn_caffe.pycaffe import Net


class Classifier(Net):
    """A deploy net in the TEST phase; images are resized to image_dims, then cropped to the input."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None):
        super().__init__(model_file, pretrained_file, caffe_pb2.TEST)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = numpy.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = self.crop_dims if not image_dims else image_dims

    def predict(self, inputs, oversample=True):
        """Class scores for H x W x K images: each resized to image_dims, then the ten crops' mean
        (oversample) or the centre crop's; (N x classes)."""
        in_ = self.inputs[0]
        resized = numpy.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]),
                              dtype=numpy.float32)
        for i, image in enumerate(inputs):
            resized[i] = io.resize_image(image, self.image_dims)
        if oversample:
            crops = io.oversample(resized, self.crop_dims)
        else:
            start = (numpy.array(self.image_dims) / 2.0 - self.crop_dims / 2.0).astype(int)
            crops = resized[:, start[0]:start[0] + self.crop_dims[0], start[1]:start[1] + self.crop_dims[1], :]
        caffe_in = numpy.zeros(numpy.array(crops.shape)[[0, 3, 1, 2]], dtype=numpy.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions


def make_transformer(net, mean, input_scale, raw_scale, channel_swap):
    """A Transformer for the net's first input: H x W x K images in, with the given preprocessing."""
    in_ = net.inputs[0]
    transformer = io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer

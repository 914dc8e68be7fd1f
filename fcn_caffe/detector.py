"""caffe.Detector: a Net that classifies windows of images, R-CNN style, optionally with context padding around
each window (cf. python/caffe/detector.py)."""
import os

import numpy

from fcn_caffe import io
from fcn_caffe.classifier import make_transformer
from fcn_caffe.proto import caffe_pb2
from fcn_caffe.pycaffe import Net


class Detector(Net):
    """A deploy net in the TEST phase; each window is warped to the input, context_pad pixels of context around."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None, channel_swap=None,
                 context_pad=None):
        super().__init__(model_file, pretrained_file, caffe_pb2.TEST)
        self.transformer = make_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(image file, [window (ymin, xmin, ymax, xmax), ...]), ...] -> a list of
        {'window', 'prediction', 'filename'} dicts, one per window in order."""
        images_windows = [(name, list(windows)) for name, windows in images_windows]
        crops = []
        for name, windows in images_windows:
            image = io.load_image(name).astype(numpy.float32)
            crops.extend(self.crop(image, window) for window in windows)
        in_ = self.inputs[0]
        caffe_in = numpy.zeros((len(crops), crops[0].shape[2]) + self.blobs[in_].data.shape[2:],
                               dtype=numpy.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        predictions = iter(self.forward_all(**{in_: caffe_in})[self.outputs[0]])
        return [{"window": window, "prediction": next(predictions), "filename": name}
                for name, windows in images_windows for window in windows]

    def detect_selective_search(self, image_fnames):
        """detect_windows over Selective Search proposals (needs selective_search_ijcv_with_python)."""
        import selective_search_ijcv_with_python as selective_search
        image_fnames = [os.path.abspath(f) for f in image_fnames]     # absolute for MATLAB
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im, window):
        """The window (ymin, xmin, ymax, xmax) of the image; with context_pad, the window grown so that the net
        sees context_pad pixels of context around it, out-of-image parts filled with the mean."""
        crop = im[window[0]:window[2], window[1]:window[3]]
        if not self.context_pad:
            return crop
        box = numpy.array(window, dtype=float)
        crop_size = self.blobs[self.inputs[0]].width           # assumes a square input
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h, half_w = (box[2] - box[0] + 1) / 2.0, (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        box = numpy.round(numpy.tile(center, 2) + scale * numpy.array((-half_h, -half_w, half_h, half_w)))
        scale_h, scale_w = crop_size / (box[2] - box[0] + 1), crop_size / (box[3] - box[1] + 1)
        pad_y, pad_x = round(max(0, -box[0]) * scale_h), round(max(0, -box[1]) * scale_w)   # out of the image
        im_h, im_w = im.shape[:2]
        box = numpy.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        assert clip_h > 0 and clip_w > 0
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        box = box.astype(int)
        context = io.resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        padded = numpy.ones(self.crop_dims, dtype=numpy.float32) * self.crop_mean
        padded[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return padded

    def configure_crop(self, context_pad):
        """crop_dims (the input's H x W x K) and, with context_pad, crop_mean: the mean in image space (before
        transpose, channel swap and raw scale) that fills context outside the image."""
        in_ = self.inputs[0]
        transpose = self.transformer.transpose[in_]
        self.crop_dims = numpy.array(self.blobs[in_].data.shape[1:])[[transpose[t] for t in transpose]]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = numpy.zeros(self.crop_dims, dtype=numpy.float32)
            return
        crop_mean = mean.copy().transpose([transpose[t] for t in transpose])
        channel_swap = self.transformer.channel_swap.get(in_)
        if channel_swap is not None:
            crop_mean = crop_mean[:, :, [list(channel_swap).index(i) for i in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean

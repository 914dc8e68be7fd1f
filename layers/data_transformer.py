"""Caffe's DataTransformer (data_transformer.cpp): crop, mirror, mean and scale, with Caffe's random draws.

A transformer turns one C x H x W image (uint8 or float) into a float32 C x h x w one, as Caffe's Transform:
mirror is drawn first (`mirror && Rand(2)`), then the crop offsets (TRAIN: `Rand(H - crop + 1)` for the rows,
then the columns; TEST: centred, rounding down), and every value is `(x - mean) * scale`, where the mean is
mean_file's value at the same uncropped, unmirrored position or mean_value's for the channel; mirroring flips
the output columns. mean_file is a binaryproto BlobProto the size of the (uncropped) image.

Random numbers are Caffe's (layers/rng.py): a transformer seeds its own boost::mt19937 (CaffeRNG) with one
caffe_rng_rand() from the generator the data layers share, which the solver's random_seed seeds, and `Rand(n)` is a
raw draw modulo n. Given the same layer seed, crops and mirrors are Caffe's.
"""
import numpy

from layers.rng import CaffeRNG, caffe_rng_rand
from netspec import caffe_pb2
from netspec import io as netio


class DataTransformer:
    """The transform_param of `layer`, applied as Caffe applies it. Errors name the layer."""

    def __init__(self, layer):
        p = layer.param.transform_param
        self.layer = layer
        self.scale = numpy.float32(p.scale)
        self.mirror = p.mirror
        self.crop_size = p.crop_size
        self.train = layer.phase == "TRAIN"
        if p.force_color and p.force_gray:
            raise layer.error("transform_param: cannot set both force_color and force_gray")
        self.decode_mode = "color" if p.force_color else "gray" if p.force_gray else "unchanged"
        if p.HasField("mean_file") and p.mean_value:
            raise layer.error("transform_param: cannot specify mean_file and mean_value at the same time")
        self.mean = self._read_mean(p.mean_file) if p.HasField("mean_file") else None
        self.mean_values = numpy.array(p.mean_value, dtype=numpy.float32) if p.mean_value else None
        self.draws = int(self.mirror) + 2 * int(self.train and self.crop_size > 0)     # per image
        self.rng = CaffeRNG(caffe_rng_rand()) if self.draws else None                  # Caffe's InitRand

    def _read_mean(self, path):
        found = self.layer.resolve_path(path)
        try:
            with open(found, "rb") as f:
                blob = caffe_pb2.BlobProto.FromString(f.read())
            mean = netio.blob_to_array(blob)
        except FileNotFoundError:
            raise self.layer.error(f"mean_file '{path}' not found ({self.layer.searched()})") from None
        except Exception as e:
            raise self.layer.error(f"mean_file {found} is not a binaryproto BlobProto ({e})") from None
        if mean.ndim > 4:
            raise self.layer.error(f"mean_file {found} has {mean.ndim} axes; a mean has at most 4")
        legacy = [mean.shape[i] if i < mean.ndim else 1 for i in range(4)]    # Blob::LegacyShape
        return mean.reshape(-1)[:numpy.prod(legacy[1:])].astype(numpy.float32).reshape(legacy[1:])

    def shape(self, channels, height, width):
        """InferBlobShape: the (C, h, w) of a transformed C x H x W image."""
        if self.crop_size > height or self.crop_size > width:
            raise self.layer.error(f"crop_size {self.crop_size} is larger than the {height} x {width} image")
        return (channels, self.crop_size or height, self.crop_size or width)

    def __call__(self, image):
        """Transform one C x H x W image (uint8 or float) to float32."""
        c, h, w = image.shape
        mirror = self.mirror and self.rng.rand(2) == 1
        out_c, out_h, out_w = self.shape(c, h, w)
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise self.layer.error(f"the mean_file mean is {' x '.join(map(str, self.mean.shape))} but the image is "
                                   f"{c} x {h} x {w}; they must agree")
        if self.mean_values is not None and len(self.mean_values) not in (1, c):
            raise self.layer.error(f"transform_param: specify either 1 mean_value or as many as channels: {c}")
        top = left = 0
        if self.crop_size:
            if self.train:
                top, left = self.rng.rand(h - out_h + 1), self.rng.rand(w - out_w + 1)
            else:
                top, left = (h - out_h) // 2, (w - out_w) // 2
        window = (slice(None), slice(top, top + out_h), slice(left, left + out_w))
        x = image[window].astype(numpy.float32)
        if self.mean is not None:
            x -= self.mean[window]
        elif self.mean_values is not None:
            x -= self.mean_values.reshape(-1, 1, 1)
        x *= self.scale
        return x[:, :, ::-1] if mirror else x

    def skip(self, images):
        """Draw what transforming `images` images would draw (for fast_forward)."""
        if self.rng:
            self.rng.discard(images * self.draws)

"""ImageData layer ("ImageData"): images named in a list file, with their labels. Semantics: caffe
image_data_layer.cpp.

image_data_param.source lists one image a line, `path label`, split at the line's last space (paths may hold
spaces); blank lines are skipped. Each path is root_folder + path (plain concatenation, as Caffe). Images are
read as cv::imread reads them (is_color: BGR, else grey; layers/image_io.py), resized to new_height x new_width
with cv::resize INTER_LINEAR when both are set, and put through transform_param (layers/data_transformer.py).
The tops are data (batch_size x C x h x w, shaped by the first image of each batch) and label (batch_size).
Lines are read in order and wrap around; with `shuffle` they are shuffled at setup and at every wrap, with
Caffe's caffe::shuffle; rand_skip skips a random number (below rand_skip) of lines once, at setup.
"""
import os

import numpy

from layers import image_io
from layers.base import Layer
from layers.data_transformer import DataTransformer
from layers.rng import CaffeRNG, caffe_rng_rand
from layers.registry import register


@register("ImageData")
class ImageDataLayer(Layer):
    exact_num_bottom = 0
    exact_num_top = 2

    def setup(self, bottom, top):
        p = self.param.image_data_param
        if (p.new_height > 0) != (p.new_width > 0):
            raise self.error("image_data_param: new_height and new_width must be set together (or neither)")
        if p.batch_size < 1:
            raise self.error(f"image_data_param.batch_size must be positive, got {p.batch_size}")
        self.batch_size = p.batch_size
        self.new_size = (p.new_width, p.new_height) if p.new_height else None
        self.mode = "color" if p.is_color else "gray"
        self.root_folder = p.root_folder
        self.transformer = DataTransformer(self)
        self.source = self.resolve_path(p.source)
        self.lines = self._read_list(self.source)
        self.prefetch_rng = None
        if p.shuffle:
            self.prefetch_rng = CaffeRNG(caffe_rng_rand())
            self.prefetch_rng.shuffle(self.lines)
        self.lines_id = 0
        if p.rand_skip:
            skip = caffe_rng_rand() % p.rand_skip
            if skip >= len(self.lines):
                raise self.error(f"rand_skip drew {skip}, but {self.source} lists only {len(self.lines)} images")
            self.lines_id = skip
        image = self._load(self.lines_id)
        top[0].reshape(self.batch_size, *self.transformer.shape(*image.shape))
        top[1].reshape(self.batch_size)

    def _read_list(self, path):
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            raise self.error(f"image list '{path}' not found ({self.searched()})") from None
        lines = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.rstrip()
            if not line:
                continue
            name, _, label = line.rpartition(" ")
            try:
                lines.append((name, int(label), number))
            except ValueError:
                raise self.error(f"line {number} of {path}: expected '<image path> <integer label>', "
                                 f"got {line!r}") from None
        if not lines:
            raise self.error(f"image list {path} is empty")
        return lines

    def _load(self, index):
        """The image of lines[index] as C x H x W uint8, resized as asked."""
        name, _, number = self.lines[index]
        path = self.resolve_path(self.root_folder + name)
        if not os.path.isfile(path):
            looked = "" if os.path.isabs(path) else f" ({self.searched()})"
            raise self.error(f"image '{path}' not found{looked}; it is on line {number} of {self.source}")
        try:
            image = image_io.read(path, self.mode)
        except OSError as e:
            raise self.error(f"could not load image {path} (line {number} of {self.source}): {e}") from None
        if self.new_size:
            image = image_io.resize_linear(image, *self.new_size)
        return image.transpose(2, 0, 1)

    def reshape(self, bottom, top):
        pass                                    # shaped by each batch's first image, in forward

    def forward(self, bottom, top):
        first = self._load(self.lines_id)
        shape = self.transformer.shape(*first.shape)
        data = numpy.empty((self.batch_size,) + shape, dtype=numpy.float32)
        labels = numpy.empty(self.batch_size, dtype=numpy.float32)
        for i in range(self.batch_size):
            image = first if i == 0 else self._load(self.lines_id)
            if self.transformer.shape(*image.shape) != shape:
                name, _, number = self.lines[self.lines_id]
                raise self.error(f"image {name} (line {number} of {self.source}) is {' x '.join(map(str, image.shape))}"
                                 f", but this batch's first image makes it {' x '.join(map(str, shape))}; every "
                                 f"image of a batch needs one size (set new_height/new_width or crop_size)")
            data[i] = self.transformer(image)
            labels[i] = self.lines[self.lines_id][1]
            self._next()
        top[0].reshape(*data.shape)
        top[1].reshape(self.batch_size)
        for blob, array in ((top[0], data), (top[1], labels)):
            blob.data[...] = blob.xp.asarray(array, dtype=blob.dtype)

    def _next(self, count=1):
        """Move `count` lines on; at the end of the list start over, reshuffled if shuffling."""
        while count:
            step = min(count, len(self.lines) - self.lines_id)
            self.lines_id += step
            count -= step
            if self.lines_id == len(self.lines):
                self.lines_id = 0
                if self.prefetch_rng:
                    self.prefetch_rng.shuffle(self.lines)

    def fast_forward(self, batches):
        """Skip `batches` forwards exactly as that many would (their random draws included), reading nothing."""
        self.transformer.skip(int(batches) * self.batch_size)
        self._next(int(batches) * self.batch_size)
        return self

    def backward(self, top, propagate_down, bottom):
        pass

"""Data layer ("Data"): Datum records from an LMDB, in the database's key order. Semantics: caffe data_layer.cpp
(named data_layer.py because layers/data/ holds FCN's dataset layers).

data_param.source is an LMDB folder (backend: LMDB; LevelDB is not supported), read with the `lmdb` package
(`pip install fcn-caffe[lmdb]`). Records are read in cursor order (keys sorted bytewise) and wrap around. A
Datum holds raw bytes (C x H x W uint8), float_data, or an encoded image (`encoded: true`), decoded as
cv::imdecode does: in its own channels, or colour / grey with transform_param.force_color / force_gray
(layers/image_io.py). Each is put through transform_param (layers/data_transformer.py). The tops are data
(batch_size x C x h x w, shaped by the first record of each batch) and, if a second top is given, label
(batch_size). rand_skip skips a random number (below rand_skip) of records once, at setup, as older Caffe did.
"""
import os
import warnings
import weakref

import numpy

from layers import image_io
from layers.base import Layer
from layers.data_transformer import DataTransformer
from layers.rng import caffe_rng_rand
from layers.registry import register
from netspec import caffe_pb2

_open_envs = weakref.WeakValueDictionary()   # lmdb opens an environment once per process; layers share it


@register("Data")
class DataLayer(Layer):
    exact_num_bottom = 0
    min_num_top = 1
    max_num_top = 2

    def setup(self, bottom, top):
        p = self.param.data_param
        if p.batch_size < 1:
            raise self.error(f"data_param.batch_size must be positive, got {p.batch_size}")
        self.batch_size = p.batch_size
        self.source = self.resolve_path(p.source)
        if p.backend != caffe_pb2.DataParameter.LMDB:
            hint = (" (this folder holds an LMDB: set backend: LMDB)"
                    if os.path.isfile(os.path.join(self.source, "data.mdb")) else "; convert it to an LMDB")
            raise self.error(f"data_param.backend LEVELDB is not supported, only LMDB{hint}")
        self.transformer = DataTransformer(self)
        self.forced = self.transformer.decode_mode != "unchanged"
        self._open()
        if p.rand_skip:
            skip = caffe_rng_rand() % p.rand_skip
            if skip >= self.records:
                raise self.error(f"rand_skip drew {skip}, but {self.source} holds only {self.records} records")
            for _ in range(skip):
                self._next()
        top[0].reshape(self.batch_size, *self.transformer.shape(*self._image()[0].shape))
        if len(top) > 1:
            top[1].reshape(self.batch_size)

    def _open(self):
        try:
            import lmdb
        except ImportError:
            raise self.error("reading an LMDB needs the lmdb package: pip install fcn-caffe[lmdb]") from None
        if not os.path.isdir(self.source):
            raise self.error(f"LMDB '{self.source}' not found: data_param.source must name an LMDB folder "
                             f"({self.searched()})")
        try:
            key = os.path.realpath(self.source)
            self.env = _open_envs.get(key)
            if self.env is None:
                self.env = _open_envs[key] = lmdb.open(self.source, readonly=True, lock=False, readahead=False)
            self.records = self.env.stat()["entries"]
            self.cursor = self.env.begin(buffers=False).cursor()
        except lmdb.Error as e:
            raise self.error(f"cannot open LMDB {self.source}: {e}") from None
        if not self.records or not self.cursor.first():
            raise self.error(f"LMDB {self.source} holds no records")

    def _next(self):
        if not self.cursor.next():
            self.cursor.first()                  # Caffe: "Restarting data prefetching from start."

    def _datum(self):
        try:
            return caffe_pb2.Datum.FromString(self.cursor.value())
        except Exception as e:
            raise self.error(f"record {self.cursor.key()!r} of {self.source} is not a Datum ({e})") from None

    def _image(self):
        """The current record's (C x H x W image, label)."""
        datum = self._datum()
        key = self.cursor.key()
        if datum.encoded:
            try:
                image = image_io.read(datum.data, self.transformer.decode_mode)
            except OSError as e:
                raise self.error(f"record {key!r} of {self.source}: could not decode its image ({e})") from None
            if image.dtype != numpy.uint8:
                raise self.error(f"record {key!r} of {self.source}: a {image.dtype} image; Caffe's transformer "
                                 f"needs 8-bit images")
            return image.transpose(2, 0, 1), datum.label
        if self.forced:
            warnings.warn(f"{self.type} layer '{self.name}': force_color and force_gray only apply to encoded "
                          f"Datums")
        shape = (datum.channels, datum.height, datum.width)
        values = (numpy.frombuffer(datum.data, dtype=numpy.uint8) if datum.data
                  else numpy.array(datum.float_data, dtype=numpy.float32))
        if datum.channels < 1 or values.size != numpy.prod(shape):
            raise self.error(f"record {key!r} of {self.source}: a {' x '.join(map(str, shape))} Datum holding "
                             f"{values.size} values")
        return values.reshape(shape), datum.label

    def reshape(self, bottom, top):
        pass                                    # shaped by each batch's first record, in forward

    def forward(self, bottom, top):
        data = labels = shape = None
        for i in range(self.batch_size):
            image, label = self._image()
            if i == 0:
                shape = self.transformer.shape(*image.shape)
                data = numpy.empty((self.batch_size,) + shape, dtype=numpy.float32)
                labels = numpy.empty(self.batch_size, dtype=numpy.float32)
            elif self.transformer.shape(*image.shape) != shape:
                raise self.error(f"record {self.cursor.key()!r} of {self.source} is "
                                 f"{' x '.join(map(str, image.shape))}, but this batch's first record makes it "
                                 f"{' x '.join(map(str, shape))}; every record of a batch needs one size "
                                 f"(or set crop_size)")
            data[i] = self.transformer(image)
            labels[i] = label
            self._next()
        top[0].reshape(*data.shape)
        top[0].data[...] = top[0].xp.asarray(data, dtype=top[0].dtype)
        if len(top) > 1:
            top[1].reshape(self.batch_size)
            top[1].data[...] = top[1].xp.asarray(labels, dtype=top[1].dtype)

    def fast_forward(self, batches):
        """Skip `batches` forwards exactly as that many would (their random draws included), decoding nothing."""
        self.transformer.skip(int(batches) * self.batch_size)
        for _ in range(int(batches) * self.batch_size % self.records):        # whole passes end where they began
            self._next()
        return self

    def backward(self, top, propagate_down, bottom):
        pass

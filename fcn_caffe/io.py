"""caffe.io: blob and datum conversion, the Transformer that prepares images for a net, image loading, resizing and
oversampling (cf. python/caffe/io.py).

pycaffe reads and resizes images with scikit-image; this module uses Pillow and scipy, which the engine already
needs. load_image gives what skimage gives (floats in [0, 1], H x W x 3 RGB or H x W x 1 intensity); resize_image
interpolates as skimage.transform.resize(order=interp_order) at pixel centres without anti-aliasing, repeating the
edge pixels past the border, where pycaffe's result depends on the scikit-image version installed.
"""
import numpy
from PIL import Image
from scipy import ndimage

from netspec import caffe_pb2


# ------------------------------------------------------------------ blobs and datums
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array: the legacy num/channels/height/width shape when the blob has one,
    else its `shape` (no shape at all means a scalar, so more than one value is a ValueError)."""
    values = numpy.array(blob.diff if return_diff else blob.data)
    if any(blob.HasField(axis) for axis in ("num", "channels", "height", "width")):
        return values.reshape(blob.num, blob.channels, blob.height, blob.width)
    return values.reshape(blob.shape.dim)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with arr's shape and values (and diff's, which must have that shape)."""
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """Arrays as a serialized BlobProtoVector (the format of a mean file holding several blobs)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(str):   # noqa: A002 (pycaffe's argument name)
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(str)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A C x H x W array as a Datum: uint8 arrays as bytes in `data`, others as `float_data`. Without a label the
    Datum has none (and is smaller)."""
    if arr.ndim != 3:
        raise ValueError(f"Incorrect array shape. (a Datum holds C x H x W, got shape {arr.shape})")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == numpy.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """A Datum's values as C x H x W: uint8 from `data`, else float64 from `float_data` (the label stays in
    datum.label)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return numpy.frombuffer(datum.data, dtype=numpy.uint8).reshape(shape)
    return numpy.array(datum.float_data).astype(float).reshape(shape)


# ------------------------------------------------------------------ the Transformer
class Transformer:
    """Turns H x W x K images into a net's K x H x W input and back, per input blob.

    Transformer({name: input shape}); set_transpose, set_channel_swap, set_raw_scale, set_mean and
    set_input_scale configure an input; preprocess applies, in order: resize to the input's H x W, transpose,
    channel swap, raw scale, mean subtraction, input scale. deprocess undoes them (except the resize).
    """

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def __check_input(self, in_):
        if in_ not in self.inputs:
            raise Exception(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_, data):
        self.__check_input(in_)
        caffe_in = data.astype(numpy.float32, copy=False)
        in_dims = tuple(self.inputs[in_][2:])
        if tuple(caffe_in.shape[:2]) != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if self.transpose.get(in_) is not None:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if self.channel_swap.get(in_) is not None:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        if self.raw_scale.get(in_) is not None:
            caffe_in *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            caffe_in -= self.mean[in_]
        if self.input_scale.get(in_) is not None:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_, data):
        self.__check_input(in_)
        decaf_in = data.copy().squeeze()
        if self.input_scale.get(in_) is not None:
            decaf_in /= self.input_scale[in_]
        if self.mean.get(in_) is not None:
            decaf_in += self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            decaf_in /= self.raw_scale[in_]
        if self.channel_swap.get(in_) is not None:
            decaf_in = decaf_in[numpy.argsort(self.channel_swap[in_]), :, :]
        if self.transpose.get(in_) is not None:
            decaf_in = decaf_in.transpose(numpy.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_, order):
        """The axis order that makes an H x W x K image the input's K x H x W, e.g. (2, 0, 1)."""
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception("Transpose order needs to have the same number of dimensions as the input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """The channel order after the transpose, e.g. (2, 1, 0) for RGB to BGR."""
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception("Channel swap needs to have the same number of dimensions as the input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Multiply the raw input (before the mean), e.g. 255 for models trained on [0, 255] from [0, 1] images."""
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """The mean to subtract: one value per channel (K,), or a K x H x W (or H x W) array of the input's shape."""
        self.__check_input(in_)
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, numpy.newaxis, numpy.newaxis]
        else:
            shape = (1,) + mean.shape if mean.ndim == 2 else mean.shape
            if len(shape) != 3:
                raise ValueError("Mean shape invalid")
            if tuple(shape) != tuple(self.inputs[in_][1:]):
                raise ValueError("Mean shape incompatible with input shape.")
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Multiply the input after the mean subtraction."""
        self.__check_input(in_)
        self.input_scale[in_] = scale


# ------------------------------------------------------------------ images
_GRAY_WEIGHTS = numpy.array([0.2125, 0.7154, 0.0721])      # skimage's rgb2gray (ITU-R BT.709 luma)


def load_image(filename, color=True):
    """An image as float32 in [0, 1]: H x W x 3 RGB, or with color=False H x W x 1 intensity (colour images are
    converted with skimage's rgb2gray weights). Grayscale becomes 3 equal channels; alpha is dropped."""
    with Image.open(filename) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            img = numpy.asarray(im, dtype=numpy.float64) / 65535.0
        elif im.mode == "F":
            img = numpy.asarray(im, dtype=numpy.float64)
        elif im.mode in ("1", "L"):
            img = numpy.asarray(im.convert("L"), dtype=numpy.float64) / 255.0
        else:
            img = numpy.asarray(im.convert("RGB"), dtype=numpy.float64) / 255.0
    if img.ndim == 3 and not color:
        img = img @ _GRAY_WEIGHTS
    img = img.astype(numpy.float32)
    if img.ndim == 2:
        img = img[:, :, numpy.newaxis]
        if color:
            img = numpy.tile(img, (1, 1, 3))
    return img


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K image to new_dims (height, width), interpolating with the given spline order."""
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] not in (1, 3):          # pycaffe's route for other channel counts: scipy's zoom
        scale = tuple(numpy.array(new_dims, dtype=float) / numpy.array(im.shape[:2]))
        return ndimage.zoom(im, scale + (1,), order=interp_order).astype(numpy.float32)
    low, high = im.min(), im.max()
    if high == low:                          # a constant image (avoids dividing by 0 below)
        return numpy.full(new_dims + (im.shape[-1],), low, dtype=numpy.float32)
    unit = (numpy.asarray(im, dtype=numpy.float64) - low) / (high - low)
    rows = (numpy.arange(new_dims[0]) + 0.5) * (im.shape[0] / new_dims[0]) - 0.5   # pixel centre to centre
    cols = (numpy.arange(new_dims[1]) + 0.5) * (im.shape[1] / new_dims[1]) - 0.5
    grid = numpy.meshgrid(rows, cols, indexing="ij")
    resized = numpy.stack([ndimage.map_coordinates(unit[:, :, k], grid, order=interp_order, mode="nearest")
                           for k in range(im.shape[-1])], axis=-1)
    return (resized * (high - low) + low).astype(numpy.float32)


def oversample(images, crop_dims):
    """The four corner crops and the centre crop of each H x W x K image, then the same five mirrored
    left-right: a (10 * N) x h x w x K float32 array, image by image."""
    im_shape = numpy.array(images[0].shape)
    crop_dims = numpy.array(crop_dims)
    h, w = int(crop_dims[0]), int(crop_dims[1])
    corners = [(y, x) for y in (0, int(im_shape[0] - h)) for x in (0, int(im_shape[1] - w))]
    centre = im_shape[:2] / 2.0 - crop_dims / 2.0
    boxes = corners + [(int(centre[0]), int(centre[1]))]
    crops = numpy.empty((10 * len(images), h, w, int(im_shape[-1])), dtype=numpy.float32)
    for i, im in enumerate(images):
        five = [im[y:y + h, x:x + w, :] for y, x in boxes]
        crops[10 * i:10 * i + 5] = five
        crops[10 * i + 5:10 * i + 10] = [c[:, ::-1, :] for c in five]
    return crops

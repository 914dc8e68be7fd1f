"""A segmentation data layer for your own dataset ("SegFolderData"; as a Python layer
seg_folder.SegFolderDataLayer): a folder of images, a folder of label PNGs and a split file.

param_str keys (a Python dict literal):
  image_dir, label_dir   folders holding {id}{image_ext} and {id}{label_ext}
  split                  a text file of ids, one a line
  num_classes            the number of classes K: label values must be 0..K-1, or ignore_label
  mean                   BGR mean subtracted from the image (default: the ImageNet/VGG mean FCN uses)
  ignore_label           void pixels (default 255; give loss_param { ignore_label } the same value)
  image_ext, label_ext   default: the first of .jpg .jpeg .png .bmp .tif .tiff that exists; '.png'
  resize                 (H, W): resize every image (bilinear) and label (nearest) to this size
  crop                   (H, W) or S: crop to this size (random position when randomize, else centred;
                         smaller images are padded with the mean and ignore_label)
  mirror                 flip left-right at random (only when randomize); default False
  batch_size             default 1; above 1 needs one size for all: set resize or crop
  randomize, seed        random order as the reference layers (default: randomize in the TRAIN phase)
  validate               check every label up front (default True)

Labels are class indices, not colours: a palette ('P') PNG is read as its indices (VOC's SegmentationClass
files are such PNGs), a grayscale PNG as its values. Setup reads every label once and reports, with the file
and the values found, labels outside [0, num_classes) that are not the ignore label, colour (RGB) labels and
size mismatches, so a bad dataset fails before training starts rather than as garbage mid-run.
"""
import os
import warnings

import numpy
from PIL import Image

from layers.data.seg_data import SegDataLayer, load_bgr
from layers.image_io import ImageError, check_decodes, open_image
from layers.registry import register

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VGG_MEAN = (104.00698793, 116.66876762, 122.67891434)
MAX_REPORTED = 10


def read_label(path, max_pixels=None):
    """A label image as a 2-D integer array of its values (palette indices for 'P' PNGs).

    Raises ValueError for colour labels (an RGB(A) image whose channels differ cannot be class indices), for
    JPEG labels (lossy: their class indices are changed at every edge) and for files that cannot be read.
    """
    im = open_image(path, max_pixels)
    if im.format == "JPEG":
        raise ValueError(f"label {path} is a JPEG: its lossy compression changes the class indices (around every "
                         f"edge); labels must be saved losslessly, as PNG")
    try:
        im.load()
    except Exception as e:                    # truncated or damaged
        if isinstance(e, MemoryError):
            raise
        raise ValueError(f"label {path} is truncated or damaged ({e})") from None
    if im.mode in ("RGB", "RGBA", "LA"):
        a = numpy.array(im)
        if im.mode == "LA" or (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
            return a[..., 0].astype(numpy.int64)          # grey saved as RGB: one channel is the label
        colours = numpy.unique(a[..., :3].reshape(-1, 3), axis=0)
        raise ValueError(
            f"label {path} is an {im.mode} colour image ({len(colours)} colours, e.g. "
            f"{', '.join(str(tuple(int(v) for v in c)) for c in colours[:3])}); labels must hold class indices, "
            f"not colours: save a palette or grayscale PNG of indices (solver.palette.decode_color maps VOC-palette "
            f"colours back to indices)")
    if im.mode not in ("P", "L", "I", "I;16", "1"):
        raise ValueError(f"label {path} has image mode {im.mode}; use a palette or grayscale PNG of class indices")
    return numpy.array(im).astype(numpy.int64)


def label_hint(values, num_classes, ignore_label):
    """Why out-of-range label values probably appear, for the error message."""
    values = set(values)
    if values == {255} and num_classes <= 2:
        return (" This looks like a 0/255 mask: write 1 for the foreground (255 means ignore when ignore_label is "
                "255).")
    if 255 in values and ignore_label != 255:
        return " 255 is VOC's void value: set ignore_label: 255 if it marks pixels to ignore."
    if len(values) >= 3 and max(values) < 256:
        return (" Many large values: this looks like a colour label converted to grayscale; labels must be class "
                "indices (decode colours with solver.palette.decode_color).")
    return f" If the dataset really has more classes, raise num_classes (now {num_classes})."


@register("SegFolderData")
class SegFolderDataLayer(SegDataLayer):
    required = ("image_dir", "label_dir", "split", "num_classes")
    optional = {"mean": VGG_MEAN, "ignore_label": 255, "image_ext": None, "label_ext": ".png", "resize": None,
                "crop": None, "mirror": False, "batch_size": 1, "randomize": None, "validate": True}
    deterministic_unless_train = False          # the phase decides instead (see setup_dataset)

    def setup_dataset(self, params, top):
        self.check_tops(top, ("data", "label"))
        self.image_dir, self.label_dir = params["image_dir"], params["label_dir"]
        for what in ("image_dir", "label_dir"):
            if not os.path.isdir(params[what]):
                raise self.error(f"{what} {params[what]} is not a folder ({self.searched()})")
        self.num_classes = int(params["num_classes"])
        if self.num_classes < 1:
            raise self.error(f"num_classes must be at least 1, got {self.num_classes}")
        self.ignore_label = int(params["ignore_label"])
        self.mean = numpy.array(params["mean"], dtype=numpy.float64)
        if self.mean.shape != (3,):
            raise self.error(f"mean must be three values (B, G, R), got {params['mean']!r}")
        self.image_ext, self.label_ext = params["image_ext"], params["label_ext"]
        self.resize = self._size(params, "resize")
        self.crop = self._size(params, "crop")
        self.mirror = bool(params["mirror"])
        self.batch_size = int(params["batch_size"])
        if self.batch_size < 1:
            raise self.error(f"batch_size must be at least 1, got {self.batch_size}")
        if self.batch_size > 1 and not (self.resize or self.crop):
            raise self.error(f"batch_size {self.batch_size} needs every sample to have one size: set resize or crop "
                             f"(or use batch_size 1, FCN's choice, at each image's own size)")
        if params["randomize"] is None:
            params["randomize"] = self.phase == "TRAIN"
        self.validate = bool(params["validate"])
        self._batch = None
        return self.resolve_path(params["split"])

    def _size(self, params, key):
        value = params[key]
        if value is None:
            return None
        size = (value, value) if isinstance(value, int) else tuple(value)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise self.error(f"{key} must be (height, width) or one size in pixels, got {value!r}")
        return size

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.image_paths = {i: self._image_path(i) for i in self.indices}
        self.label_paths = {i: os.path.join(self.label_dir, i + self.label_ext) for i in self.indices}
        missing = [p for p in self.label_paths.values() if not os.path.isfile(p)]
        if missing:
            raise self.error(f"{len(missing)} label file(s) of split {self.split} not found: "
                             f"{', '.join(missing[:MAX_REPORTED])}")
        if self.validate:
            self.check_labels()

    def _image_path(self, sample_id):
        exts = [self.image_ext] if self.image_ext else IMAGE_EXTS
        for ext in exts:
            path = os.path.join(self.image_dir, sample_id + ext)
            if os.path.isfile(path):
                return path
        raise self.error(f"no image for id {sample_id!r} of split {self.split} in {self.image_dir} "
                         f"(tried {', '.join(exts)})")

    def check_labels(self):
        """Read every label once; report every bad file (up to MAX_REPORTED) in one error."""
        problems, seen = [], set()
        for sample_id, label_path in self.label_paths.items():
            image_path = self.image_paths[sample_id]
            try:
                label = read_label(label_path)
            except (ValueError, OSError) as e:
                problems.append(str(e))
                continue
            try:                                       # decoded once, so that truncated files fail now
                width, height = check_decodes(image_path)
            except ImageError as e:
                problems.append(f"image {e}")
                continue
            if label.shape != (height, width):
                problems.append(f"label {label_path} is {label.shape[1]}x{label.shape[0]} but image {image_path} is "
                                f"{width}x{height} (width x height)")
                continue
            values = numpy.unique(label)
            seen.update(values.tolist())
            bad = values[((values < 0) | (values >= self.num_classes)) & (values != self.ignore_label)]
            if bad.size:
                shown = ", ".join(str(v) for v in bad[:12].tolist()) + (", ..." if bad.size > 12 else "")
                problems.append(f"label {label_path} holds value(s) {shown} outside [0, {self.num_classes}) that are "
                                f"not the ignore_label {self.ignore_label}."
                                + label_hint(bad.tolist(), self.num_classes, self.ignore_label))
        if problems:
            more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
            raise self.error(f"{len(problems)} of {len(self.label_paths)} sample(s) in split {self.split} are "
                             f"unusable. Labels must be class indices 0..{self.num_classes - 1}, or "
                             f"{self.ignore_label} to ignore a pixel:\n  "
                             + "\n  ".join(problems[:MAX_REPORTED]) + more)
        if seen == {self.ignore_label}:
            raise self.error(f"every label in split {self.split} holds only the ignore_label {self.ignore_label}: no "
                             f"pixel is left to train or score; check the labels and ignore_label")
        if self.num_classes > 1 and seen and seen <= {0, self.ignore_label} and self.ignore_label in seen:
            warnings.warn(f"{self.type} layer '{self.name}': every label in split {self.split} holds only 0 and the "
                          f"ignore_label {self.ignore_label}, so no pixel trains classes 1..{self.num_classes - 1}; if "
                          f"these are 0/{self.ignore_label} masks whose {self.ignore_label} marks the foreground, "
                          f"write 1 instead")

    # -- one sample: load, resize, crop, mirror
    def load(self, sample_id):
        image = load_bgr(self, self.image_paths[sample_id], self.mean)   # 3 x H x W, mean already subtracted
        try:
            label = read_label(self.label_paths[sample_id])
        except ValueError as e:
            raise self.error(str(e)) from None
        if label.shape != image.shape[1:]:
            raise self.error(f"label {self.label_paths[sample_id]} is {label.shape} but its image is "
                             f"{image.shape[1:]}")
        if self.resize:
            image, label = self._resize(image, label)
        if self.crop:
            image, label = self._crop(image, label)
        if self.mirror and self.random and self.rng.random() < 0.5:
            image, label = image[:, :, ::-1], label[:, ::-1]
        return numpy.ascontiguousarray(image), numpy.ascontiguousarray(label)[numpy.newaxis]

    def _resize(self, image, label):
        h, w = self.resize
        channels = [numpy.array(Image.fromarray(c).resize((w, h), Image.BILINEAR)) for c in image]
        label = numpy.array(Image.fromarray(label.astype(numpy.int32)).resize((w, h), Image.NEAREST))
        return numpy.stack(channels).astype(numpy.float32), label.astype(numpy.int64)

    def _crop(self, image, label):
        ch, cw = self.crop
        h, w = label.shape
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:                  # pad with the mean (0 after subtraction) and with ignored pixels
            image = numpy.pad(image, ((0, 0), (0, ph), (0, pw)))
            label = numpy.pad(label, ((0, ph), (0, pw)), constant_values=self.ignore_label)
            h, w = label.shape
        if self.random:
            y, x = self.rng.randint(0, h - ch), self.rng.randint(0, w - cw)
        else:
            y, x = (h - ch) // 2, (w - cw) // 2
        return image[:, y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]

    # -- batches: batch_size samples in the reference's order
    def _fill_batch(self):
        if self._batch is None:
            self._batch = []
            for n in range(self.batch_size):
                if n:
                    self.advance()
                self._batch.append(self.load(self.indices[self.idx]))

    def fast_forward(self, batches):
        """Skip `batches` forward passes exactly as that many forwards would. Random crops and mirrors draw from
        the same generator as the order, so when they are on, the skipped samples are loaded (their sizes decide
        the crop draws); otherwise only the order moves on."""
        draws = self.random and (self.crop or self.mirror)
        for _ in range(int(batches)):
            if draws:
                self._fill_batch()
            elif self._batch is None:
                for _ in range(self.batch_size - 1):
                    self.advance()
            self._batch = None
            self.advance()

    def reshape(self, bottom, top):
        self._fill_batch()
        image, label = self._batch[0]
        top[0].reshape(self.batch_size, *image.shape)
        top[1].reshape(self.batch_size, *label.shape)

    def forward(self, bottom, top):
        for n, (image, label) in enumerate(self._batch):
            top[0].data[n] = top[0].xp.asarray(image)
            top[1].data[n] = top[1].xp.asarray(label)
        self._batch = None
        self.advance()

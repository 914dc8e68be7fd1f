"""PASCAL VOC and SBD segmentation data layers ("VOCSegData", "SBDDSegData"; as Python layers voc_layers.
VOCSegDataLayer / SBDDSegDataLayer). Semantics: the FCN reference voc_layers.py.

param_str keys: voc_dir (or sbdd_dir), split, mean (BGR), randomize (default True), seed (default None).
Tops: data (1 x 3 x H x W, BGR minus mean) and label (1 x 1 x H x W: 0-20, 255 = void), at the image's size.
  VOC: {voc_dir}/ImageSets/Segmentation/{split}.txt, JPEGImages/{id}.jpg, SegmentationClass/{id}.png (palette PNG,
       read as its indices).
  SBD: {sbdd_dir}/{split}.txt, img/{id}.jpg, cls/{id}.mat: GTcls.Segmentation (no void band).
"""
import os

import numpy
from PIL import Image

from layers.data.seg_data import SegDataLayer, load_bgr, load_mat
from layers.registry import register


@register("VOCSegData")
class VOCSegDataLayer(SegDataLayer):
    required = ("voc_dir", "split", "mean")

    def setup_dataset(self, params, top):
        self.check_tops(top, ("data", "label"))
        self.voc_dir = params["voc_dir"]
        self.mean = numpy.array(params["mean"])
        return f"{self.voc_dir}/ImageSets/Segmentation/{self.split}.txt"

    def load(self, sample_id):
        return self.load_image(sample_id), self.load_label(sample_id)

    def load_image(self, sample_id):
        return load_bgr(self, f"{self.voc_dir}/JPEGImages/{sample_id}.jpg", self.mean)

    def load_label(self, sample_id):
        path = f"{self.voc_dir}/SegmentationClass/{sample_id}.png"
        if not os.path.isfile(path):
            raise self.error(f"label {path} not found")
        im = Image.open(path)
        if im.format == "JPEG":
            raise self.error(f"label {path} is a JPEG: its lossy compression changes the class indices; VOC labels "
                             f"are palette PNGs")
        if im.mode not in ("P", "L"):
            raise self.error(f"label {path} is a {im.mode} image; VOC labels are palette PNGs whose pixel values "
                             f"are class indices (decode colour labels with solver.palette.decode_color)")
        return numpy.array(im, dtype=numpy.uint8)[numpy.newaxis]


@register("SBDDSegData")
class SBDDSegDataLayer(SegDataLayer):
    required = ("sbdd_dir", "split", "mean")

    def setup_dataset(self, params, top):
        self.check_tops(top, ("data", "label"))
        self.sbdd_dir = params["sbdd_dir"]
        self.mean = numpy.array(params["mean"])
        return f"{self.sbdd_dir}/{self.split}.txt"

    def load(self, sample_id):
        return self.load_image(sample_id), self.load_label(sample_id)

    def load_image(self, sample_id):
        return load_bgr(self, f"{self.sbdd_dir}/img/{sample_id}.jpg", self.mean)

    def load_label(self, sample_id):
        path = f"{self.sbdd_dir}/cls/{sample_id}.mat"
        gt = load_mat(self, path, "GTcls")
        try:                                   # a MATLAB struct: loadmat gives a 1x1 record array
            seg = gt[0]["Segmentation"][0]
        except (IndexError, ValueError, KeyError):
            raise self.error(f"{path}: GTcls has no Segmentation field (fields: {gt.dtype.names})") from None
        return seg.astype(numpy.uint8)[numpy.newaxis]

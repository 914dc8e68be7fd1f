"""PASCAL-Context segmentation data layer ("PASCALContextSegData"; as a Python layer
pascalcontext_layers.PASCALContextSegDataLayer). Semantics: the FCN reference pascalcontext_layers.py
(the 59-class task of Mottaghi et al., CVPR 2014).

param_str keys: voc_dir (VOC2010 is appended), context_dir, split, randomize (default True), seed (default None).
The mean is fixed (BGR). Files: {voc_dir}/VOC2010/ImageSets/Main/{split}.txt, JPEGImages/{id}.jpg;
{context_dir}/labels.txt (the full label list, "index: name" lines), 59_labels.txt (the task's classes) and
trainval/{id}.mat with variable LabelMap. Each of the 59 classes becomes its position + 1; every other pixel is
0, background, a trained class (not ignored): 60 outputs, and 255 never occurs. The full-list index is the
number written in labels.txt (the reference takes the line's position + 1: the same number in the released file).
"""
import os

import numpy

from layers.data.seg_data import SegDataLayer, load_bgr, load_mat
from layers.registry import register

MEAN = numpy.array((104.007, 116.669, 122.679), dtype=numpy.float32)
# the 59-class list spells three classes differently from the full list
RENAMES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}


def read_labels(layer, path):
    """[(index, name)] from 'index: name' lines; spaces are removed from names, as the reference does."""
    if not os.path.isfile(path):
        raise layer.error(f"label list {path} not found")
    labels = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            index, sep, name = line.partition(":")
            try:
                labels.append((int(index), name.replace(" ", "").strip()))
            except ValueError:
                raise layer.error(f"{path} line {n}: expected 'index: name', got {line.strip()!r}") from None
    return labels


@register("PASCALContextSegData")
class PASCALContextSegDataLayer(SegDataLayer):
    required = ("voc_dir", "context_dir", "split")

    def setup_dataset(self, params, top):
        self.check_tops(top, ("data", "label"))
        self.voc_dir = params["voc_dir"] + "/VOC2010"
        self.context_dir = params["context_dir"]
        self.mean = MEAN
        full = {}
        for index, name in read_labels(self, f"{self.context_dir}/labels.txt"):
            full.setdefault(name, index)       # the first match wins, as list.index does
        self.labels_59 = [RENAMES.get(name, name) for _, name in read_labels(self, f"{self.context_dir}/59_labels.txt")]
        missing = [name for name in self.labels_59 if name not in full]
        if missing:
            raise self.error(f"classes {missing} of 59_labels.txt are not in labels.txt")
        # full-list index -> task class (0 = background), applied as one lookup table
        self.lut = numpy.zeros(max(full.values()) + 1, dtype=numpy.uint8)
        for task_index, name in enumerate(self.labels_59):
            self.lut[full[name]] = task_index + 1
        return f"{self.voc_dir}/ImageSets/Main/{self.split}.txt"

    def load(self, sample_id):
        return self.load_image(sample_id), self.load_label(sample_id)

    def load_image(self, sample_id):
        return load_bgr(self, f"{self.voc_dir}/JPEGImages/{sample_id}.jpg", self.mean)

    def load_label(self, sample_id):
        label_full = numpy.asarray(load_mat(self, f"{self.context_dir}/trainval/{sample_id}.mat", "LabelMap"))
        label_full = label_full.astype(numpy.int64)
        inside = (label_full >= 0) & (label_full < len(self.lut))
        label = numpy.where(inside, self.lut[numpy.where(inside, label_full, 0)], 0).astype(numpy.uint8)
        return label[numpy.newaxis]

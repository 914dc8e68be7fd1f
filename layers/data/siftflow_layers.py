"""SIFT Flow segmentation data layer ("SIFTFlowSegData"; as a Python layer siftflow_layers.SIFTFlowSegDataLayer).
Semantics: the FCN reference siftflow_layers.py.

param_str keys: siftflow_dir, split, randomize (default True), seed (default None). The mean is fixed (BGR).
Tops: data (1 x 3 x 256 x 256), sem (semantic, 0-32, 255 = void), geo (geometric, 0-2, 255 = void).
Files: {siftflow_dir}/{split}.txt; Images/, SemanticLabels/ and GeoLabels/ under
spatial_envelope_256x256_static_8outdoorcategories/ ({id}.jpg, {id}.mat with variable S). Labels are 1-based with
0 = void: they are cast to uint8 and shifted down by one, so void wraps to 255; geometric -1 counts as void.
"""
import numpy

from layers.data.seg_data import SegDataLayer, load_bgr, load_mat
from layers.registry import register

SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"
MEAN = numpy.array((114.578, 115.294, 108.353), dtype=numpy.float32)


@register("SIFTFlowSegData")
class SIFTFlowSegDataLayer(SegDataLayer):
    required = ("siftflow_dir", "split")

    def setup_dataset(self, params, top):
        self.check_tops(top, ("data", "semantic label", "geometric label"))
        self.siftflow_dir = params["siftflow_dir"]
        self.mean = MEAN
        return f"{self.siftflow_dir}/{self.split}.txt"

    def load(self, sample_id):
        return (self.load_image(sample_id), self.load_label(sample_id, "semantic"),
                self.load_label(sample_id, "geometric"))

    def load_image(self, sample_id):
        return load_bgr(self, f"{self.siftflow_dir}/Images/{SUBDIR}/{sample_id}.jpg", self.mean)

    def load_label(self, sample_id, label_type):
        folder = {"semantic": "SemanticLabels", "geometric": "GeoLabels"}[label_type]
        label = numpy.array(load_mat(self, f"{self.siftflow_dir}/{folder}/{SUBDIR}/{sample_id}.mat", "S"))
        if label_type == "geometric":
            label[label == -1] = 0
        label = label.astype(numpy.uint8)
        label -= 1                             # classes start at 0; void (0) wraps to 255
        return label[numpy.newaxis]

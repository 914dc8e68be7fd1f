"""NYUDv2 segmentation data layer ("NYUDSegData"; as a Python layer nyud_layers.NYUDSegDataLayer).
Semantics: the FCN reference nyud_layers.py (the 40-class task of Gupta et al., ECCV 2014).

param_str keys: nyud_dir, split, tops (a list from color, depth, hha, label: one top blob each, in the list's order),
randomize (default True), seed (default None). Files: {nyud_dir}/{split}.txt and, per id,
  color: data/images/img_{id}.png, RGB -> BGR, minus (116.190, 97.203, 92.318)      -> 3 x H x W
  depth: data/depth/img_{id}.png, log(depth) minus 7.844                             -> 1 x H x W
  hha:   data/hha/img_{id}.png, minus (132.431, 94.076, 118.477), channels NOT swapped -> 3 x H x W
  label: segmentation/img_{id}.mat 'segmentation' as uint8 minus 1: classes 1-40 -> 0-39, void 0 -> 255
"""
import numpy

from layers.data.seg_data import SegDataLayer, load_bgr, load_mat, open_image
from layers.registry import register

MEAN_BGR = numpy.array((116.190, 97.203, 92.318), dtype=numpy.float32)
MEAN_HHA = numpy.array((132.431, 94.076, 118.477), dtype=numpy.float32)
MEAN_LOGD = numpy.array((7.844,), dtype=numpy.float32)
TOPS = ("color", "depth", "hha", "label")


@register("NYUDSegData")
class NYUDSegDataLayer(SegDataLayer):
    required = ("nyud_dir", "split", "tops")

    def setup_dataset(self, params, top):
        self.nyud_dir = params["nyud_dir"]
        self.tops = list(params["tops"]) if isinstance(params["tops"], (list, tuple)) else [params["tops"]]
        unknown = [t for t in self.tops if t not in TOPS]
        if unknown:
            raise self.error(f"param_str 'tops' has unknown output(s) {unknown}; choose from {', '.join(TOPS)}")
        self.check_tops(top, self.tops)
        return f"{self.nyud_dir}/{self.split}.txt"

    def load(self, sample_id):
        return [getattr(self, f"load_{t}")(sample_id) for t in self.tops]

    def load_color(self, sample_id):
        return load_bgr(self, f"{self.nyud_dir}/data/images/img_{sample_id}.png", MEAN_BGR)

    def load_depth(self, sample_id):
        d = numpy.array(open_image(self, f"{self.nyud_dir}/data/depth/img_{sample_id}.png"), dtype=numpy.float32)
        if d.ndim != 2:
            raise self.error(f"depth image img_{sample_id}.png has shape {d.shape}; expected one channel")
        with numpy.errstate(divide="ignore"):  # a hole (0) becomes -inf, as in the reference
            d = numpy.log(d)
        d -= MEAN_LOGD
        return d[numpy.newaxis]

    def load_hha(self, sample_id):
        hha = numpy.array(open_image(self, f"{self.nyud_dir}/data/hha/img_{sample_id}.png"), dtype=numpy.float32)
        hha -= MEAN_HHA
        return hha.transpose(2, 0, 1)

    def load_label(self, sample_id):
        label = numpy.array(load_mat(self, f"{self.nyud_dir}/segmentation/img_{sample_id}.mat", "segmentation"))
        label = label.astype(numpy.uint8)
        label -= 1                             # classes 0-39; void (0) wraps to 255
        return label[numpy.newaxis]

"""Loss sampling (FCN paper, section 3.4): keep a random fraction of each label's cells, mark the rest ignored.

    layer { name: "sample" type: "Python" bottom: "label" top: "label_sampled"
            python_param { module: "loss_sampling" layer: "LossSamplingLayer"
                           param_str: "{'keep': 0.5, 'cell': 32, 'seed': 1}" } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label_sampled" top: "loss"
            loss_param { ignore_label: 255 } }

Patchwise training is loss sampling: the paper drops each final-layer cell from the loss with probability 1 - p.
In TRAIN, each image's label (N x 1 x H x W, or N x H x W) is cut into cells of `cell` x `cell` pixels from its
top-left corner (the final layer's stride: a cell is what one final-layer position scores; the last row and
column of cells may be smaller), each cell is kept with probability `keep` (the paper's p), and the pixels of the
other cells become `ignore_label`, which the loss leaves out. In TEST the label passes through unchanged.

Random numbers: forward k (counted from setup) draws from numpy's generator seeded with (seed, k), so a seed
repeats a run whatever the image sizes, and fast_forward(batches), which a solver restoring a snapshot calls,
only moves k on: the resumed run samples what the uninterrupted one did. Without a 'seed' in param_str, the seed
is one draw at setup from the generator the data layers share (layers/rng.py), which the solver's random_seed
seeds.

It is a Python layer, so real Caffe reads a net that uses it; running it there needs a pycaffe module of this name.
"""
import numpy

from layers.base import Layer
from layers.data.seg_data import parse_param_str
from layers.rng import caffe_rng_rand


class LossSamplingLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param, phase="TEST"):
        super().__init__(param, phase)
        self.param_str = param.python_param.param_str

    def setup(self, bottom, top):
        params = parse_param_str(self, self.param_str, ("keep",), {"cell": 1, "seed": None, "ignore_label": 255})
        self.keep, self.cell = float(params["keep"]), params["cell"]
        if not 0 < self.keep <= 1:
            raise self.error(f"param_str 'keep' is the fraction of cells kept, in (0, 1]; got {params['keep']!r}")
        if not isinstance(self.cell, int) or self.cell < 1:
            raise self.error(f"param_str 'cell' is a cell's side in pixels, a positive int; got {self.cell!r}")
        seed = params["seed"]
        if seed is None:
            seed = caffe_rng_rand()                          # as a data layer seeds itself: random_seed decides
        if not isinstance(seed, int) or seed < 0:
            raise self.error(f"param_str 'seed' must be a non-negative int, got {seed!r}")
        self.seed, self.ignore_label = seed, params["ignore_label"]
        self.forwards = 0                      # forwards drawn so far: the next one draws from (seed, forwards)
        self.kept_fraction = None              # of the cells, in the last TRAIN forward

    def reshape(self, bottom, top):
        if bottom[0].ndim < 3:
            raise self.error(f"needs a label of N x H x W or N x 1 x H x W, got shape {bottom[0].shape}")
        top[0].reshape(*bottom[0].shape)

    def cell_mask(self, shape):
        """The kept cells of the next forward's batch, drawn now: bool, N x cells down x cells across."""
        rng = numpy.random.default_rng([self.seed, self.forwards])
        self.forwards += 1
        h, w = shape[-2:]
        return rng.random((shape[0], -(-h // self.cell), -(-w // self.cell))) < self.keep

    def forward(self, bottom, top):
        label = bottom[0].data
        if self.phase != "TRAIN":
            if top[0] is not bottom[0]:
                top[0].data[...] = label
            return
        cells = self.cell_mask(label.shape)
        self.kept_fraction = float(cells.mean())
        h, w = label.shape[-2:]
        keep = cells.repeat(self.cell, 1).repeat(self.cell, 2)[:, :h, :w]
        keep = keep.reshape(keep.shape[:1] + (1,) * (label.ndim - 3) + keep.shape[1:])   # over any channel axis
        xp = self.xp(bottom[0])
        top[0].data[...] = xp.where(xp.asarray(keep), label, label.dtype.type(self.ignore_label))

    def fast_forward(self, batches):
        """Skip `batches` forwards as that many TRAIN forwards would (a solver restoring a snapshot calls this)."""
        if self.phase == "TRAIN":
            self.forwards += int(batches)

    def backward(self, top, propagate_down, bottom):
        pass                                   # labels take no gradient

    def allow_force_backward(self, bottom_index):
        return False

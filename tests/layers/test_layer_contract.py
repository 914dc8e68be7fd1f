"""The layer contract (layers/base.py): forward/backward are the generic array-module code, an optional fast path
(forward_fast/backward_fast) may decline, and what a layer needs from its Net is handed over at build time.
Each layer with a fast path is run both ways here and compared; the other conventions are gone from layers/."""
import pathlib
import re

import numpy
import pytest

from layers import Blob, Net
from tests.gradient_check import make_layer

rng = numpy.random.default_rng(17)
LAYERS = pathlib.Path(__file__).resolve().parents[2] / "layers"

CASES = {   # name: (layer text, bottom shapes, label bottom?)
    "conv": ('type: "Convolution" convolution_param { num_output: 20 kernel_size: 3 pad: 1 group: 2 '
             'weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.1 } }',
             [(2, 32, 9, 10)], False),
    "conv_strided": ('type: "Convolution" convolution_param { num_output: 6 kernel_size: 3 stride: 2 pad: 4 '
                     'weight_filler { type: "gaussian" std: 0.1 } }', [(1, 3, 11, 9)], False),
    "deconv": ('type: "Deconvolution" convolution_param { num_output: 4 kernel_size: 4 stride: 2 '
               'weight_filler { type: "gaussian" std: 0.1 } bias_filler { type: "gaussian" std: 0.1 } }',
               [(2, 5, 6, 7)], False),
    "relu": ('type: "ReLU" relu_param { negative_slope: 0.1 }', [(2, 3, 8, 9)], False),
    "pool_max": ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [(2, 3, 9, 8)],
                 False),
    "pool_ave": ('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 stride: 2 }', [(2, 3, 9, 8)], False),
    "softmax_loss": ('type: "SoftmaxWithLoss" loss_param { ignore_label: 255 }', [(2, 5, 4, 3)], True),
}


def arrays_for(shapes, label):
    """The bottoms' arrays (a label with an ignored cell when asked) and the top diff's seed."""
    arrays = [rng.normal(size=shape) for shape in shapes]
    if label:
        n, c, h, w = shapes[0]
        labels = rng.integers(0, c, size=(n, 1, h, w)).astype(float)
        labels[0, 0, 0, 0] = 255
        arrays.append(labels)
    return arrays


def run(text, arrays, fast, weights=None):
    """(top data, bottom diff, param diffs, params) of one forward and backward, by the fast or generic path."""
    bottom_names = "".join(f' bottom: "b{i}"' for i in range(len(arrays)))
    layer = make_layer(f'name: "l" {text}{bottom_names} top: "t"')
    bottoms = []
    for array in arrays:
        blob = Blob(*array.shape)
        blob.data[...] = array
        bottoms.append(blob)
    tops = [Blob()]
    layer.run_setup(bottoms, tops)
    for blob, value in zip(layer.blobs, weights or []):
        blob.data[...] = value
    layer.reshape(bottoms, tops)
    if not (fast and layer.forward_fast(bottoms, tops)):
        layer.forward(bottoms, tops)
    tops[0].diff[...] = numpy.random.default_rng(3).normal(size=tops[0].shape)
    layer.param_propagate_down = [True] * len(layer.blobs)
    down = [True] + [False] * (len(bottoms) - 1)
    if not (fast and layer.backward_fast(tops, down, bottoms)):
        layer.backward(tops, down, bottoms)
    return (tops[0].data.copy(), bottoms[0].diff.copy(), [p.diff.copy() for p in layer.blobs],
            [p.data.copy() for p in layer.blobs])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_fast_path_computes_what_the_generic_path_does(name):
    text, shapes, label = CASES[name]
    arrays = arrays_for(shapes, label)
    y, dx, dws, weights = run(text, arrays, fast=True)
    y_ref, dx_ref, dws_ref, _ = run(text, arrays, fast=False, weights=weights)
    numpy.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    for dw, dw_ref in zip(dws, dws_ref):
        numpy.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-5)


def test_no_layer_follows_the_old_conventions():
    old = re.compile(r"def (forward_cpu|forward_gpu|backward_cpu|backward_gpu)\b|def _forward\(self, bottom, top, run|"
                     r"\.net\.|getattr\(self, \"net\"|layer_need_backward")
    for path in sorted(LAYERS.rglob("*.py")):
        if path.name == "net.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not old.search(line), f"{path.relative_to(LAYERS.parent)}:{number}: {line.strip()}"


def test_the_net_hands_each_layer_what_it_needs(tmp_path):
    text = """name: "n" force_backward: false
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
    layer { name: "pool" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    """
    (tmp_path / "net.prototxt").write_text(text)
    net = Net(str(tmp_path / "net.prototxt"), phase="TEST")
    pool = net.layer_dict["pool"]
    assert pool.base_dir == str(tmp_path) and pool.source_dir == str(tmp_path)
    assert pool.need_backward is False and pool.bottom_need_backward == [False]
    net.forward()
    assert pool.argmax is None                  # a deploy net keeps no argmax: no backward can follow

"""Every layer type on the CPU against its GPU path: forward tops, bottom diffs and param diffs, float32.

The GPU path runs two ways: 'sim' on every machine (tests/cuda_sim.py: the layers' GPU code on numpy arrays, the
hand-written kernels' CUDA source compiled for the CPU), and 'gpu' through CuPy on a CUDA device (-m gpu), where it
also shows that no numpy-only call meets a CuPy array. Tolerances are the caffe-golden ones (tests/golden.py):
rtol 1e-5 for tops, 1e-4 for gradients (sums reordered by cuBLAS), exact where the layer only moves data.
With FCN_GPU_REPORT=path each comparison appends its largest difference there, a JSON line (bench/gpu_check.sh).
"""
import json
import os

import numpy
import pytest

from layers import backend
from tests import cuda_sim
from tests.conftest import gpu
from tests.golden import assert_close
from layers import Blob
from tests.gradient_check import make_layer

EXACT = {"Crop", "Concat", "Flatten", "Reshape", "Split", "Threshold", "ArgMax", "Silence", "ReLU"}

# (id, layer text, bottom shapes, bottoms that get a gradient, bottom makers: "label:C[:ignore]" or None)
CASES = [
    ("conv3x3", 'type: "Convolution" convolution_param { num_output: 6 kernel_size: 3 pad: 1 '
                'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } }',
     [(2, 4, 9, 8)], [True], None),
    ("conv_pad100", 'type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 pad: 100 '
                    'weight_filler { type: "gaussian" std: 0.3 } }', [(1, 3, 5, 6)], [True], None),
    ("conv_stride_group", 'type: "Convolution" convolution_param { num_output: 4 kernel_h: 3 kernel_w: 2 '
                          'stride: 2 group: 2 weight_filler { type: "gaussian" std: 0.3 } }',
     [(2, 4, 9, 10)], [True], None),
    ("conv1x1", 'type: "Convolution" convolution_param { num_output: 5 kernel_size: 1 '
                'weight_filler { type: "gaussian" std: 0.3 } }', [(2, 6, 4, 5)], [True], None),
    ("deconv_upscore2", 'type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 2 '
                        'bias_term: false weight_filler { type: "gaussian" std: 0.3 } }', [(1, 3, 5, 6)], [True], None),
    ("deconv_upscore8", 'type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 16 stride: 8 '
                        'weight_filler { type: "gaussian" std: 0.3 } }', [(1, 2, 3, 4)], [True], None),
    ("pool_max", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }', [(2, 3, 9, 8)], [True],
     None),
    ("pool_max_pad_mask", 'type: "Pooling" top: "mask" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
     [(1, 2, 9, 7)], [True], None),
    ("pool_ave", 'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }', [(2, 2, 7, 8)],
     [True], None),
    ("pool_global_max", 'type: "Pooling" pooling_param { pool: MAX global_pooling: true }', [(2, 3, 4, 5)], [True],
     None),
    ("relu", 'type: "ReLU"', [(2, 3, 4, 5)], [True], None),
    ("relu_leaky", 'type: "ReLU" relu_param { negative_slope: 0.1 }', [(2, 3, 4, 5)], [True], None),
    ("inner_product", 'type: "InnerProduct" inner_product_param { num_output: 7 '
                      'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.1 } }',
     [(3, 4, 2, 2)], [True], None),
    ("softmax", 'type: "Softmax"', [(2, 5, 3, 4)], [True], None),
    ("softmax_loss_fcn", 'type: "SoftmaxWithLoss" loss_param { ignore_label: 255 normalize: false }',
     [(1, 5, 6, 7), (1, 1, 6, 7)], [True, False], [None, "label:5:255"]),
    ("softmax_loss_valid", 'type: "SoftmaxWithLoss" loss_param { ignore_label: 255 }',
     [(2, 4, 3, 5), (2, 1, 3, 5)], [True, False], [None, "label:4:255"]),
    ("crop", 'type: "Crop" crop_param { axis: 2 offset: 2 offset: 1 }', [(1, 3, 9, 8), (1, 3, 5, 4)],
     [True, False], None),
    ("eltwise_sum", 'type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 }',
     [(2, 3, 4, 5), (2, 3, 4, 5)], [True, True], None),
    ("eltwise_prod", 'type: "Eltwise" eltwise_param { operation: PROD }', [(2, 3, 4, 5)] * 3, [True] * 3, None),
    ("eltwise_max", 'type: "Eltwise" eltwise_param { operation: MAX }', [(2, 3, 4, 5)] * 3, [True] * 3, None),
    ("concat", 'type: "Concat"', [(2, 3, 4, 5), (2, 2, 4, 5)], [True, True], None),
    ("split", 'type: "Split" top: "y2"', [(2, 3, 4, 5)], [True], None),
    ("dropout_test", 'type: "Dropout" phase: TEST dropout_param { dropout_ratio: 0.3 }', [(2, 3, 4, 5)], [True],
     None),
    ("scale", 'type: "Scale" scale_param { bias_term: true filler { type: "gaussian" std: 0.5 } '
              'bias_filler { type: "gaussian" std: 0.5 } }', [(2, 3, 4, 5)], [True], None),
    ("bias", 'type: "Bias" bias_param { filler { type: "gaussian" std: 0.5 } }', [(2, 3, 4, 5)], [True], None),
    ("lrn_across", 'type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 }', [(2, 5, 4, 3)], [True], None),
    ("lrn_within", 'type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }',
     [(2, 2, 5, 4)], [True], None),
    ("power", 'type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', [(2, 3, 4, 5)], [True], None),
    ("exp", 'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }', [(2, 3, 4, 5)], [True], None),
    ("log", 'type: "Log" log_param { shift: 10 }', [(2, 3, 4, 5)], [True], None),
    ("flatten", 'type: "Flatten"', [(2, 3, 4, 5)], [True], None),
    ("reshape", 'type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 5 } }', [(2, 3, 4, 5)], [True], None),
    ("threshold", 'type: "Threshold" threshold_param { threshold: 0.2 }', [(2, 3, 4, 5)], [False], None),
    ("argmax", 'type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', [(2, 6, 3, 4)], [False], None),
    ("accuracy", 'type: "Accuracy" top: "per_class" accuracy_param { top_k: 2 ignore_label: 255 }',
     [(2, 5, 3, 4), (2, 1, 3, 4)], [False, False], [None, "label:5:255"]),
    ("absval", 'type: "AbsVal"', [(2, 3, 4, 5)], [True], None),
    ("bnll", 'type: "BNLL"', [(2, 3, 4, 5)], [True], None),
    ("clip", 'type: "Clip" clip_param { min: -0.5 max: 1.2 }', [(2, 3, 4, 5)], [True], None),
    ("elu", 'type: "ELU" elu_param { alpha: 0.5 }', [(2, 3, 4, 5)], [True], None),
    ("prelu", 'type: "PReLU" prelu_param { filler { type: "uniform" min: 0.1 max: 0.4 } }', [(2, 3, 4, 5)],
     [True], None),
    ("prelu_shared", 'type: "PReLU" prelu_param { channel_shared: true }', [(2, 3, 4, 5)], [True], None),
    ("sigmoid", 'type: "Sigmoid"', [(2, 3, 4, 5)], [True], None),
    ("tanh", 'type: "TanH"', [(2, 3, 4, 5)], [True], None),
    ("swish", 'type: "Swish" swish_param { beta: 1.5 }', [(2, 3, 4, 5)], [True], None),
    ("batch_norm_train", 'type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 }', [(2, 3, 4, 5)],
     [True], None),
    ("batch_norm_global", 'type: "BatchNorm" phase: TEST', [(2, 3, 4, 5)], [True], None),
    ("mvn", 'type: "MVN" mvn_param { across_channels: true }', [(2, 3, 4, 5)], [True], None),
    ("slice", 'type: "Slice" top: "y2" top: "y3" slice_param { slice_point: 1 slice_point: 4 }', [(2, 6, 3, 4)],
     [True], None),
    ("tile", 'type: "Tile" tile_param { axis: 1 tiles: 3 }', [(2, 3, 4, 5)], [True], None),
    ("reduction_asum", 'type: "Reduction" reduction_param { operation: ASUM axis: 1 coeff: -0.5 }', [(2, 3, 4, 5)],
     [True], None),
    ("reduction_sumsq", 'type: "Reduction" reduction_param { operation: SUMSQ axis: 2 coeff: 2 }', [(2, 3, 4, 5)],
     [True], None),
    ("embed", 'type: "Embed" embed_param { num_output: 4 input_dim: 6 weight_filler { type: "gaussian" } '
              'bias_filler { type: "gaussian" } }', [(2, 5)], [False], ["label:6:0"]),
    ("parameter", 'type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', [], [], None),
    ("filter", 'type: "Filter" top: "y2"', [(4, 2, 3), (4, 3), (4,)], [True, True, False],
     [None, None, "label:2:0"]),
    ("batch_reindex", 'type: "BatchReindex"', [(4, 3, 2), (6,)], [True, False], [None, "label:4:0"]),
    ("euclidean_loss", 'type: "EuclideanLoss"', [(2, 3, 4), (2, 12)], [True, True], None),
    ("sigmoid_ce_loss", 'type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: 255 normalization: VALID }',
     [(2, 3, 4), (2, 3, 4)], [True, False], [None, "label:2:255"]),
    ("hinge_loss_l2", 'type: "HingeLoss" hinge_loss_param { norm: L2 }', [(5, 4), (5,)], [True, False],
     [None, "label:4:0"]),
    ("infogain_loss", 'type: "InfogainLoss" top: "prob" loss_weight: 1 loss_weight: 0 '
                      'loss_param { ignore_label: 255 }',
     [(2, 4, 3, 2), (2, 1, 3, 2), (4, 4)], [True, False, False], [None, "label:4:255", None]),
    ("multinomial_logistic_loss", 'type: "MultinomialLogisticLoss"', [(5, 4), (5,)], [True, False],
     [None, "label:4:0"]),
    ("contrastive_loss", 'type: "ContrastiveLoss" contrastive_loss_param { margin: 2 }',
     [(6, 3, 1, 1), (6, 3, 1, 1), (6, 1, 1, 1)], [True, True, False], [None, None, "label:2:0"]),
    ("spp_max", 'type: "SPP" spp_param { pyramid_height: 3 }', [(2, 2, 9, 7)], [True], None),
    ("spp_ave", 'type: "SPP" spp_param { pyramid_height: 2 pool: AVE }', [(2, 2, 5, 7)], [True], None),
    ("im2col", 'type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 dilation: 2 }', [(2, 2, 7, 9)],
     [True], None),
    ("conv_depthwise", 'type: "Convolution" convolution_param { num_output: 8 group: 4 kernel_size: 3 stride: 2 '
                       'pad: 1 weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } }',
     [(2, 4, 9, 8)], [True], None),
    ("lstm_static", 'type: "LSTM" recurrent_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } '
                    'bias_filler { type: "gaussian" } }', [(3, 2, 4), (3, 2), (2, 5)], [True, False, True],
     [None, "label:2:0", None]),
    ("rnn", 'type: "RNN" recurrent_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } }',
     [(3, 2, 4), (3, 2)], [True, False], [None, "label:2:0"]),
    ("lstm_unit", 'type: "LSTMUnit" top: "h"', [(1, 3, 4), (1, 3, 16), (1, 3)], [True, True, False],
     [None, None, "label:2:0"]),
]


def make(case):
    name, text, shapes = case[:3]
    head = f'name: "{name}" ' + " ".join(f'bottom: "b{i}"' for i in range(len(shapes))) + ' top: "y" '
    return make_layer(head + text, phase="TEST" if "phase: TEST" in text else "TRAIN")


def bottom_arrays(case, seed=5):
    rng = numpy.random.default_rng(seed)
    _, _, shapes, _, makers = case
    arrays = []
    for i, shape in enumerate(shapes):
        maker = makers[i] if makers else None
        if maker:                                  # "label:classes:ignore_label"
            _, classes, ignore = maker.split(":")
            a = rng.integers(0, int(classes), size=shape).astype(numpy.float32)
            a[rng.random(shape) < 0.2] = float(ignore)
        else:                                      # distinct values: no ties for MAX, ArgMax, Eltwise MAX
            a = rng.permutation(int(numpy.prod(shape))).reshape(shape).astype(numpy.float32)
            a = (a / a.size - 0.5) * 4
        arrays.append(a)
    return arrays


def run(case, device, params=None):
    """Set the layer up on the CPU, then run forward and backward with its blobs on `device` ('cpu', 'sim' or
    'gpu'). Returns (tops, bottom diffs, param diffs, the params it ran with), all numpy."""
    layer = make(case)
    arrays = bottom_arrays(case)
    bottoms = []
    for a in arrays:
        b = Blob(*a.shape)
        b.data[...] = a
        bottoms.append(b)
    tops = [Blob() for _ in range(1 + case[1].count('top: "'))]
    layer.run_setup(bottoms, tops)
    for blob, value in zip(layer.blobs, params or []):
        blob.data[...] = value
    used = [p.data.copy() for p in layer.blobs]
    if device != "cpu":
        for blob in bottoms + tops + layer.blobs:
            blob.to_gpu()
    layer.run_forward(bottoms, tops)
    out = [backend.to_cpu(t.data).copy() for t in tops]
    propagate = case[3]
    diffs, pdiffs = [], []
    if any(propagate) or layer.blobs:
        rng = numpy.random.default_rng(6)
        for t in tops:
            t.diff[...] = t.xp.asarray(rng.normal(size=t.shape).astype(numpy.float32))
        for blob in layer.blobs:
            blob.diff[...] = 0
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.run_backward(tops, propagate, bottoms)
        diffs = [backend.to_cpu(b.diff).copy() for b, down in zip(bottoms, propagate) if down]
        pdiffs = [backend.to_cpu(p.diff).copy() for p in layer.blobs]
    return out, diffs, pdiffs, used


def largest_difference(a, b):
    a, b = numpy.asarray(a, numpy.float64), numpy.asarray(b, numpy.float64)
    if a.size == 0:
        return 0.0, 0.0
    err = numpy.abs(a - b)
    return float(err.max()), float((err / numpy.maximum(numpy.abs(b), numpy.abs(b).max() * 1e-6 + 1e-30)).max())


@pytest.fixture(params=["sim", pytest.param("gpu", marks=gpu)])
def device(request):
    if request.param == "sim" and not cuda_sim.have_compiler():
        pytest.skip("needs a C++ compiler (g++) to run the kernels' source on the CPU")
    return request.param


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gpu_path_matches_the_cpu(case, device, monkeypatch):
    cpu = run(case, "cpu")
    if device == "sim":
        cuda_sim.simulate(monkeypatch)
    have = run(case, device, params=cpu[3])
    layer_type = case[1].split('"')[1]
    worst = [0.0, 0.0]
    pairs = ([("top", "forward", g, w) for g, w in zip(have[0], cpu[0])] +
             [("bottom diff", "gradient", g, w) for g, w in zip(have[1], cpu[1])] +
             [("param diff", "gradient", g, w) for g, w in zip(have[2], cpu[2])])
    assert len(have[1]) == len(cpu[1]) and len(have[2]) == len(cpu[2])
    for what, tolerance, got, want in pairs:
        assert_close(got, want, f"{case[0]} ({device}): {what}", "exact" if layer_type in EXACT else tolerance)
        worst = [max(x, y) for x, y in zip(worst, largest_difference(got, want))]
    report = os.environ.get("FCN_GPU_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"case": case[0], "layer": layer_type, "device": device, "max_abs": worst[0],
                                "max_rel": worst[1]}) + "\n")


def test_every_layer_type_has_a_parity_case():
    from layers import known_types
    covered = {c[1].split('"')[1] for c in CASES}
    # data layers read files and have no GPU path of their own; Python layers are the user's code
    untested = {"Input", "HDF5Data", "DummyData", "Python", "Silence", "HDF5Output", "VOCSegData", "SBDDSegData",
                "SIFTFlowSegData", "NYUDSegData", "PASCALContextSegData", "SegFolderData",
                "MemoryData", "ImageData", "Data"}
    assert set(known_types()) - untested <= covered, sorted(set(known_types()) - untested - covered)


def test_dropout_train_keeps_one_mask_on_the_gpu_path(device, monkeypatch):
    """TRAIN-phase Dropout draws from the device's own generator (cupy.random on the GPU): its output and its
    gradient must use the same mask, scaled by 1 / (1 - ratio)."""
    if device == "sim":
        cuda_sim.simulate(monkeypatch)
    layer = make_layer('name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.25 }')
    x = numpy.random.default_rng(1).uniform(1, 2, size=(4, 8, 16, 16)).astype(numpy.float32)
    bottom, top = Blob(*x.shape), Blob()
    bottom.data[...] = x
    layer.run_setup([bottom], [top])
    bottom.to_gpu()
    top.to_gpu()
    layer.run_forward([bottom], [top])
    top.diff[...] = 1
    layer.run_backward([top], [True], [bottom])
    y, dx = backend.to_cpu(top.data), backend.to_cpu(bottom.diff)
    kept = y != 0
    numpy.testing.assert_allclose(y[kept], x[kept] / numpy.float32(0.75), rtol=1e-6)
    numpy.testing.assert_array_equal(dx, numpy.where(kept, numpy.float32(1 / 0.75), 0))
    assert 0.7 < kept.mean() < 0.8

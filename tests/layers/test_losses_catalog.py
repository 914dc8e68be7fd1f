"""EuclideanLoss, SigmoidCrossEntropyLoss, HingeLoss, InfogainLoss, MultinomialLogisticLoss and ContrastiveLoss:
numerical gradients, Caffe's normalizations and the bottoms each refuses (real Caffe's values: the catalog
goldens)."""
import numpy
import pytest

from layers import Net
from netspec import io
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(21)


def loss_layer(kind, bottoms, extra=""):
    names = " ".join(f'bottom: "{b}"' for b in bottoms)
    return make_layer(f'name: "loss" type: "{kind}" {names} top: "loss" {extra}')


def away_from(values, points, gap=0.1):
    """values moved at least `gap` away from each of `points` (where the loss has a kink)."""
    for p in points:
        near = numpy.abs(values - p) < gap
        values[near] = p + numpy.copysign(gap, values[near] - p + 1e-12)
    return values


def labels(n, classes):
    return rng.integers(0, classes, size=n).astype(numpy.float64)


def test_euclidean_gradient_reaches_both_bottoms():
    layer = loss_layer("EuclideanLoss", "ab")
    a, b = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 8))          # same count per item, other shapes
    check_layer_gradient(layer, [a, b])
    _, top = run_layer(loss_layer("EuclideanLoss", "ab"), a, b)
    assert numpy.isclose(float(top[0].data), ((a.reshape(3, 8) - b) ** 2).sum() / 3 / 2)
    assert layer.allow_force_backward(1)
    with pytest.raises(ValueError, match="EuclideanLoss layer 'loss': inputs must have the same dimension"):
        run_layer(loss_layer("EuclideanLoss", "ab"), a, rng.normal(size=(3, 7)))
    with pytest.raises(ValueError, match="same first dimension"):
        run_layer(loss_layer("EuclideanLoss", "ab"), a, rng.normal(size=(4, 8)))


@pytest.mark.parametrize("loss_param, divisor", [
    ("", 2),                                                     # this layer's default: BATCH_SIZE
    ("loss_param { normalization: FULL }", 2 * 3 * 4),
    ("loss_param { normalize: true }", 2 * 3 * 4),               # legacy: VALID, and nothing is ignored
    ("loss_param { normalization: NONE }", 1),
])
def test_sigmoid_cross_entropy_normalization_and_gradient(loss_param, divisor):
    x, t = rng.normal(scale=2, size=(2, 3, 4)), rng.uniform(size=(2, 3, 4))
    _, top = run_layer(loss_layer("SigmoidCrossEntropyLoss", "xt", loss_param), x, t)
    p = 1 / (1 + numpy.exp(-x))
    assert numpy.isclose(float(top[0].data), -(t * numpy.log(p) + (1 - t) * numpy.log(1 - p)).sum() / divisor)
    check_layer_gradient(loss_layer("SigmoidCrossEntropyLoss", "xt", loss_param), [x, t], [True, False])


def test_sigmoid_cross_entropy_ignore_label():
    x, t = rng.normal(size=(2, 10)), rng.integers(0, 2, size=(2, 10)).astype(numpy.float64)
    t[0, :3] = -1
    layer = loss_layer("SigmoidCrossEntropyLoss", "xt", "loss_param { ignore_label: -1 normalization: VALID }")
    check_layer_gradient(layer, [x, t], [True, False])
    bottoms, top = run_layer(layer, x, t)
    keep = t != -1
    p = 1 / (1 + numpy.exp(-x[keep]))
    expected = -(t[keep] * numpy.log(p) + (1 - t[keep]) * numpy.log(1 - p)).sum() / keep.sum()
    assert numpy.isclose(float(top[0].data), expected)
    top[0].diff[...] = 1
    layer.run_backward(top, [True, False], bottoms)
    assert not bottoms[0].diff[~keep].any()
    with pytest.raises(ValueError, match="cannot backpropagate to the target"):
        layer.run_backward(top, [True, True], bottoms)
    with pytest.raises(ValueError, match="same count"):
        run_layer(loss_layer("SigmoidCrossEntropyLoss", "xt"), x, t[:, :9])


@pytest.mark.parametrize("norm, power", [("L1", 1), ("L2", 2)])
def test_hinge_loss(norm, power):
    scores = away_from(rng.normal(scale=1.5, size=(5, 4)), (-1, 1))
    label = labels(5, 4)
    layer = loss_layer("HingeLoss", "sl", f"hinge_loss_param {{ norm: {norm} }}")
    check_layer_gradient(layer, [scores, label], [True, False])
    _, top = run_layer(loss_layer("HingeLoss", "sl", f"hinge_loss_param {{ norm: {norm} }}"), scores, label)
    sign = numpy.ones_like(scores)
    sign[numpy.arange(5), label.astype(int)] = -1                 # the target class counts too: 1 - s_label
    assert numpy.isclose(float(top[0].data), (numpy.maximum(0, 1 + sign * scores) ** power).sum() / 5)
    with pytest.raises(ValueError, match=r"label values \[4\] are outside \[0, 4\)"):
        run_layer(loss_layer("HingeLoss", "sl"), scores, numpy.full(5, 4.0))


def test_multinomial_logistic_loss():
    prob = rng.uniform(0.05, 1, size=(6, 5))
    prob /= prob.sum(axis=1, keepdims=True)
    label = labels(6, 5)
    layer = loss_layer("MultinomialLogisticLoss", "pl")
    check_layer_gradient(layer, [prob, label], [True, False], rtol=1e-3)
    bottoms, top = run_layer(layer, prob, label)
    assert numpy.isclose(float(top[0].data), -numpy.log(prob[numpy.arange(6), label.astype(int)]).sum() / 6)
    prob[0, int(label[0])] = 0                                    # clamped at 1e-20 as Caffe does
    _, top = run_layer(loss_layer("MultinomialLogisticLoss", "pl"), prob, label)
    assert float(top[0].data) > -numpy.log(1e-20) / 6 - 1e-9
    with pytest.raises(ValueError, match="one value per item"):
        run_layer(loss_layer("MultinomialLogisticLoss", "pl"), prob, numpy.zeros((6, 2)))


def softmax(x, axis):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_infogain_with_matrix_bottom():
    score, label = rng.normal(size=(6, 5)), labels(6, 5)
    h = numpy.eye(5) + rng.uniform(0, 0.5, size=(5, 5))
    layer = loss_layer("InfogainLoss", ["s", "l", "H"])
    check_layer_gradient(layer, [score, label, h], [True, False, False])
    _, top = run_layer(loss_layer("InfogainLoss", ["s", "l", "H"]), score, label, h)
    expected = -(h[label.astype(int)] * numpy.log(softmax(score, 1))).sum() / 6
    assert numpy.isclose(float(top[0].data), expected)


def test_infogain_spatial_ignore_and_prob_top(tmp_path):
    score, label = rng.normal(size=(2, 4, 3, 2)), labels(2 * 3 * 2, 4).reshape(2, 1, 3, 2)
    label[0, 0, 0] = 255
    h = rng.uniform(0, 1, size=(4, 4))
    path = tmp_path / "H.binaryproto"
    path.write_bytes(io.array_to_blob(h.reshape(1, 1, 4, 4).astype(numpy.float32)).SerializeToString())
    extra = f'infogain_loss_param {{ source: "{path}" }} loss_param {{ ignore_label: 255 }}'
    check_layer_gradient(loss_layer("InfogainLoss", "sl", extra), [score, label], [True, False], rtol=1e-3)
    layer = make_layer(f'name: "loss" type: "InfogainLoss" bottom: "s" bottom: "l" top: "loss" top: "prob" {extra}')
    _, top = run_layer(layer, score, label, tops=2)
    prob = softmax(score, 1)
    numpy.testing.assert_allclose(top[1].data, prob)
    keep = (label != 255).reshape(-1)
    rows = h.astype(numpy.float32)[numpy.where(keep, label.reshape(-1), 0).astype(int)]       # (cells, 4)
    logs = numpy.log(prob.transpose(0, 2, 3, 1).reshape(-1, 4))
    assert numpy.isclose(float(top[0].data), -(rows * logs).sum(axis=1)[keep].sum() / keep.sum())
    assert layer.loss_weights == [1.0, 0.0]


def test_infogain_refuses_label_and_forced_matrix():
    net = """force_backward: true
      layer { name: "in" type: "Input" top: "s" top: "l" top: "H"
              input_param { shape { dim: 3 dim: 2 } shape { dim: 3 } shape { dim: 2 dim: 2 } } }
      layer { name: "loss" type: "InfogainLoss" bottom: "s" bottom: "l" bottom: "H" top: "loss" }"""
    net = Net(net, phase="TRAIN")
    net.forward(s=rng.normal(size=(3, 2)), l=numpy.array([0, 1, 1.0]), H=numpy.eye(2))
    with pytest.raises(ValueError, match="InfogainLoss layer 'loss': cannot backpropagate to the infogain matrix"):
        net.backward()                       # as Caffe: force_backward forces H, and the layer refuses it
    with pytest.raises(ValueError, match="infogain_loss_param.source"):
        run_layer(loss_layer("InfogainLoss", "sl"), rng.normal(size=(3, 2)), numpy.zeros(3))
    with pytest.raises(ValueError, match="must be 2 x 2"):
        run_layer(loss_layer("InfogainLoss", "slH"), rng.normal(size=(3, 2)), numpy.zeros(3), numpy.eye(3))


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_loss(legacy):
    a, b = rng.normal(size=(8, 3, 1, 1)), rng.normal(size=(8, 3, 1, 1))
    sim = (numpy.arange(8) % 2).astype(numpy.float64).reshape(8, 1, 1, 1)
    d2 = ((a - b) ** 2).sum(axis=(1, 2, 3))
    margin = float(numpy.median(d2) if legacy else numpy.median(numpy.sqrt(d2)))
    keep = numpy.abs((d2 if legacy else numpy.sqrt(d2)) - margin) > 0.05     # away from the margin's kink
    a, b, sim = a[keep], b[keep], sim[keep]
    extra = f"contrastive_loss_param {{ margin: {margin} legacy_version: {str(legacy).lower()} }}"
    # Caffe's dissimilar-pair gradient divides by d + 1e-4, not d: the numerical one differs by about 1e-4 / d
    check_layer_gradient(loss_layer("ContrastiveLoss", ["a", "b", "sim"], extra), [a, b, sim], [True, True, False],
                         rtol=1e-4 if legacy else 1e-3)
    _, top = run_layer(loss_layer("ContrastiveLoss", ["a", "b", "sim"], extra), a, b, sim)
    d2, similar = ((a - b) ** 2).sum(axis=(1, 2, 3)), sim.reshape(-1) == 1
    apart = numpy.maximum(margin - d2, 0) if legacy else numpy.maximum(margin - numpy.sqrt(d2), 0) ** 2
    assert numpy.isclose(float(top[0].data), numpy.where(similar, d2, apart).sum() / len(d2) / 2)
    layer = loss_layer("ContrastiveLoss", ["a", "b", "sim"])
    assert layer.allow_force_backward(1) and not layer.allow_force_backward(2)


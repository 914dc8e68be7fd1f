"""Accuracy, ArgMax and Threshold (forward-only layers) against loop oracles written from Caffe's C++ loops;
the golden cases in test_golden.py compare them with real Caffe."""
import numpy
import pytest

from layers import Blob
from tests.gradient_check import make_layer, run_layer

rng = numpy.random.default_rng(3)


def run(layer_text, *arrays, tops=1):
    layer = make_layer(layer_text, phase="TEST")
    bottom, top = run_layer(layer, *[numpy.asarray(a, dtype=numpy.float32) for a in arrays], tops=tops)
    return layer, bottom, top


# ---------------------------------------------------------------- Accuracy
def accuracy_oracle(scores, labels, top_k, ignore_label=None):
    """Caffe's AccuracyLayer::Forward_cpu, loop for loop (axis 1)."""
    n, c = scores.shape[:2]
    s = scores.reshape(n, c, -1)
    lab = labels.reshape(n, -1)
    hits, count = 0, 0
    per_hit, per_num = numpy.zeros(c), numpy.zeros(c)
    for i in range(n):
        for j in range(s.shape[2]):
            v = int(lab[i, j])
            if ignore_label is not None and v == ignore_label:
                continue
            per_num[v] += 1
            better = -1
            for k in range(c):
                better += s[i, k, j] >= s[i, v, j]
            if better < top_k:
                hits += 1
                per_hit[v] += 1
            count += 1
    per_class = numpy.where(per_num == 0, 0, per_hit / numpy.maximum(per_num, 1))
    return (hits / count if count else 0.0), per_class


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_accuracy_matches_caffes_loop_with_ties_and_ignored_cells(top_k):
    scores = rng.integers(-2, 2, size=(2, 5, 3, 4)).astype(numpy.float32)     # many exact ties
    labels = rng.integers(0, 5, size=(2, 1, 3, 4)).astype(numpy.float32)
    labels[0, 0, 0, :3] = 255
    labels[labels == 3] = 255                                                 # class 3 never counted
    _, _, top = run(f'name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a" top: "pc" '
                    f'accuracy_param {{ top_k: {top_k} ignore_label: 255 }}', scores, labels, tops=2)
    want, per_class = accuracy_oracle(scores, labels, top_k, 255)
    assert top[0].shape == () and top[1].shape == (5,)
    assert float(top[0].data) == pytest.approx(want, rel=1e-6)
    numpy.testing.assert_allclose(top[1].data, per_class, rtol=1e-6)
    assert top[1].data[3] == 0


def test_accuracy_axis_last_and_all_ignored():
    scores = rng.normal(size=(6, 4)).astype(numpy.float32)
    labels = scores.argmax(axis=1).astype(numpy.float32)
    labels[:2] = (labels[:2] + 1) % 4                                          # two wrong
    _, _, top = run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a" accuracy_param { axis: -1 }',
                    scores, labels)
    assert float(top[0].data) == pytest.approx(4 / 6)
    _, _, top = run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a" '
                    'accuracy_param { ignore_label: 7 }', scores, numpy.full(6, 7, numpy.float32))
    assert float(top[0].data) == 0                                             # no cells: 0, as Caffe


def test_accuracy_errors():
    scores = rng.normal(size=(2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"Accuracy layer 'acc': the number of labels must match"):
        run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a"', scores, numpy.zeros((2, 1, 2, 3)))
    with pytest.raises(ValueError, match=r"top_k 4 is more than the 3 classes"):
        run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a" accuracy_param { top_k: 4 }',
            scores, numpy.zeros((2, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"label values \[3\] are outside \[0, 3\)"):
        run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a"', scores, numpy.full((2, 1, 2, 2), 3.))
    layer, bottom, top = run('name: "acc" type: "Accuracy" bottom: "s" bottom: "l" top: "a"',
                             scores, numpy.zeros((2, 1, 2, 2)))
    layer.run_backward(top, [False, False], bottom)                           # nothing asked: fine
    with pytest.raises(ValueError, match=r"Accuracy layer 'acc': Accuracy has no gradient"):
        layer.run_backward(top, [True, False], bottom)


# ---------------------------------------------------------------- ArgMax
def argmax_oracle(x, top_k, out_max_val, axis=None):
    """Caffe's ArgMaxLayer::Forward_cpu: sort (value, index) pairs descending, per position."""
    if axis is None:
        flat = x.reshape(x.shape[0], -1)
        out = numpy.zeros((x.shape[0], 2 if out_max_val else 1, top_k))
        for i, row in enumerate(flat):
            pairs = sorted(((v, j) for j, v in enumerate(row)), reverse=True)[:top_k]
            out[i, 0] = [j for _, j in pairs]
            if out_max_val:
                out[i, 1] = [v for v, _ in pairs]
        return out
    moved = numpy.moveaxis(x, axis, -1)
    out = numpy.zeros(moved.shape[:-1] + (top_k,))
    for pos in numpy.ndindex(*moved.shape[:-1]):
        pairs = sorted(((v, j) for j, v in enumerate(moved[pos])), reverse=True)[:top_k]
        out[pos] = [v if out_max_val else j for v, j in pairs]
    return numpy.moveaxis(out, -1, axis)


@pytest.mark.parametrize("axis", [None, 0, 1, 3, -2])
@pytest.mark.parametrize("top_k,out_max_val", [(1, False), (3, False), (3, True)])
def test_argmax_matches_caffes_sort_with_ties(axis, top_k, out_max_val):
    x = rng.integers(-2, 2, size=(3, 4, 5, 4)).astype(numpy.float32)          # ties everywhere
    extra = "" if axis is None else f"axis: {axis}"
    _, _, top = run(f'name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param {{ top_k: {top_k} '
                    f'out_max_val: {str(out_max_val).lower()} {extra} }}', x)
    want = argmax_oracle(x, top_k, out_max_val, axis)
    if axis is None:
        assert top[0].shape == (3, 2 if out_max_val else 1, top_k, 1)
        want = want[..., None]
    numpy.testing.assert_array_equal(top[0].data, want)


def test_argmax_shapes_and_errors():
    _, _, top = run('name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 2 }',
                    rng.normal(size=(4, 6)))
    assert top[0].shape == (4, 1, 2)                       # fewer than 3 axes: Caffe pads the top to 3
    with pytest.raises(ValueError, match=r"ArgMax layer 'am': top_k 5 is more than the 4 entries along axis 1"):
        run('name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 5 axis: 1 }',
            rng.normal(size=(2, 4, 3)))
    with pytest.raises(ValueError, match=r"top_k 13 is more than the 12 values of each item"):
        run('name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 13 }', rng.normal(size=(2, 4, 3)))
    layer, bottom, top = run('name: "am" type: "ArgMax" bottom: "x" top: "y"', rng.normal(size=(2, 3)))
    with pytest.raises(ValueError, match="ArgMax has no gradient"):
        layer.run_backward(top, [True], bottom)


# ---------------------------------------------------------------- Threshold
def test_threshold_is_strict_and_runs_in_place():
    x = numpy.array([[-1, 0.2, 0.2000001, 0.5, 0.19999]], numpy.float32)
    _, _, top = run('name: "t" type: "Threshold" bottom: "x" top: "y" threshold_param { threshold: 0.2 }', x)
    numpy.testing.assert_array_equal(top[0].data, [[0, 0, 1, 1, 0]])
    layer = make_layer('name: "t" type: "Threshold" bottom: "x" top: "x"')          # threshold 0, in place
    blob = Blob(1, 3)
    blob.data[...] = [[-0.0, 0.0, 1e-30]]
    layer.run_setup([blob], [blob])
    layer.run_forward([blob], [blob])
    numpy.testing.assert_array_equal(blob.data, [[0, 0, 1]])
    with pytest.raises(ValueError, match="Threshold has no gradient"):
        layer.run_backward([blob], [True], [blob])

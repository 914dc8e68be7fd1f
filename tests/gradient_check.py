"""Numerical gradient checks for layers (cf. caffe's GradientChecker): objective 1/2 sum(top^2), so each top's
diff is its data; central differences over every bottom and param element, in float64."""
import numpy

from layers import Blob, create_layer
from netspec import io


def make_layer(prototxt, phase="TRAIN"):
    """A layer from the text of one `layer { ... }` block (or its body)."""
    text = prototxt if prototxt.lstrip().startswith("layer") else f"layer {{ {prototxt} }}"
    param = io.read_net(text).layer[0]
    return create_layer(param, phase)


def run_layer(layer, *arrays, tops=1, in_place=False):
    """Set up a layer on bottoms holding `arrays` (in their dtype) and run one forward: (bottoms, tops).
    in_place: the one top is the first bottom."""
    dtype = arrays[0].dtype if arrays else numpy.float32
    bottoms = []
    for array in arrays:
        blob = Blob(*array.shape, dtype=array.dtype)
        blob.data[...] = array
        bottoms.append(blob)
    top = bottoms[:1] if in_place else [Blob(dtype=dtype) for _ in range(tops)]
    layer.run_setup(bottoms, top)
    layer.run_forward(bottoms, top)
    return bottoms, top


def _objective(layer, bottoms, tops):
    layer.run_forward(bottoms, tops)
    return 0.5 * sum(float((t.data.astype(numpy.float64) ** 2).sum()) for t in tops)


def check_layer_gradient(layer, bottom_arrays, propagate_down=None, eps=1e-6, atol=1e-5, rtol=1e-4,
                         check_params=True, top_count=1):
    """Compare the layer's analytic gradients with central differences. Returns the largest error seen."""
    bottoms = []
    for array in bottom_arrays:
        b = Blob(*array.shape, dtype=numpy.float64)
        b.data[...] = array
        bottoms.append(b)
    tops = [Blob(dtype=numpy.float64) for _ in range(top_count)]
    propagate_down = propagate_down or [True] * len(bottoms)
    layer.run_setup(bottoms, tops)
    for blob in layer.blobs:
        if not blob.data.any():                   # give zero-filled params something to differentiate
            blob.data[...] = numpy.random.default_rng(0).normal(size=blob.shape)
    layer.param_propagate_down = [check_params] * len(layer.blobs)

    _objective(layer, bottoms, tops)
    for t in tops:
        t.diff[...] = t.data
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.run_backward(tops, propagate_down, bottoms)
    analytic = [b.diff.copy() for b in bottoms] + [p.diff.copy() for p in layer.blobs]

    targets = [(f"bottom {i}", b) for i, b in enumerate(bottoms) if propagate_down[i]]
    if check_params:
        targets += [(f"param {i}", p) for i, p in enumerate(layer.blobs)]
    index_of = {id(b): k for k, b in enumerate(bottoms + layer.blobs)}
    worst = 0.0
    for what, blob in targets:
        grad = analytic[index_of[id(blob)]]
        flat = blob.data.reshape(-1)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            up = _objective(layer, bottoms, tops)
            flat[j] = keep - eps
            down = _objective(layer, bottoms, tops)
            flat[j] = keep
            numeric = (up - down) / (2 * eps)
            have = grad.reshape(-1)[j]
            err = abs(have - numeric)
            worst = max(worst, err)
            assert err <= atol + rtol * max(abs(numeric), abs(have)), (
                f"{layer.type} layer '{layer.name}': {what} element {numpy.unravel_index(j, blob.shape)}: "
                f"analytic {have:.8g}, numeric {numeric:.8g}")
    return worst

"""Slice, Tile, Reduction, Embed, Parameter, Filter, BatchReindex and HDF5Output: values, numerical gradient checks
(index and selector bottoms excluded), force_backward and Caffe's parameter checks. test_golden.py compares each
against Caffe."""
import h5py
import numpy
import pytest

from layers import Blob, Net
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(5)


def layer(kind, params="", bottoms=("x",), tops=("y",)):
    text = " ".join(f'bottom: "{b}"' for b in bottoms) + " " + " ".join(f'top: "{t}"' for t in tops)
    return make_layer(f'name: "l" type: "{kind}" {text} {params}')


@pytest.mark.parametrize("params,axis,tops,cuts", [
    ("slice_param { axis: 1 slice_point: 2 slice_point: 5 }", 1, 3, [2, 5]),
    ("slice_param { axis: -1 }", 3, 2, [3]),
    ("slice_param { slice_dim: 2 slice_point: 1 }", 2, 2, [1]),
    ("slice_param { axis: 0 }", 0, 1, []),
])
def test_slice(params, axis, tops, cuts):
    x = rng.normal(size=(2, 6, 4, 6))
    names = [f"y{i}" for i in range(tops)]
    _, top = run_layer(layer("Slice", params, tops=names), x, tops=tops)
    for t, want in zip(top, numpy.split(x, cuts, axis=axis)):
        numpy.testing.assert_array_equal(t.data, want)
    check_layer_gradient(layer("Slice", params, tops=names), [x], top_count=tops)


@pytest.mark.parametrize("params,tops,message", [
    ("slice_param { axis: 1 slice_point: 2 }", 3, r"3 tops need 2 slice_point values, got 1"),
    ("slice_param { axis: 1 slice_point: 4 slice_point: 2 }", 3, r"slice_point \[4, 2\] must increase"),
    ("slice_param { axis: 1 slice_point: 7 }", 2, r"slice_point \[7\] must increase .* at most the size 6"),
    ("slice_param { axis: 1 }", 4, r"4 tops do not evenly divide axis 1 of size 6"),
    ("slice_param { axis: 1 slice_dim: 1 }", 2, r"give either slice_param.axis or the legacy slice_dim"),
    ("slice_param { axis: 4 }", 2, r"axis 4 is out of range"),
])
def test_slice_checks(params, tops, message):
    with pytest.raises(ValueError, match="Slice layer 'l': " + message):
        run_layer(layer("Slice", params, tops=[f"y{i}" for i in range(tops)]), numpy.zeros((2, 6, 4)), tops=tops)


@pytest.mark.parametrize("axis,tiles,shape", [(1, 3, (2, 3, 4)), (-1, 2, (2, 3, 4)), (0, 2, (3, 2))])
def test_tile(axis, tiles, shape):
    x = rng.normal(size=shape)
    _, (top,) = run_layer(layer("Tile", f"tile_param {{ axis: {axis} tiles: {tiles} }}"), x)
    a = axis % x.ndim
    want = numpy.tile(x.reshape(x.shape[:a] + (1, -1)), (1,) * a + (tiles, 1)).reshape(top.shape)
    numpy.testing.assert_array_equal(top.data, want)
    assert top.shape[a] == shape[a] * tiles
    check_layer_gradient(layer("Tile", f"tile_param {{ axis: {axis} tiles: {tiles} }}"), [x])
    with pytest.raises(ValueError, match=r"Tile layer 'l': tile_param.tiles must be given and positive"):
        run_layer(layer("Tile", "tile_param { axis: 1 }"), x)


@pytest.mark.parametrize("operation,f", [("SUM", lambda x: x), ("ASUM", numpy.abs), ("SUMSQ", numpy.square),
                                         ("MEAN", lambda x: x)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduction(operation, f, axis):
    x = rng.normal(size=(2, 3, 4))
    x[numpy.abs(x) < 0.05] = 0.3                   # ASUM's derivative jumps at 0
    params = f"reduction_param {{ operation: {operation} axis: {axis} coeff: -1.5 }}"
    _, (top,) = run_layer(layer("Reduction", params), x)
    a = axis % x.ndim
    summed = f(x).reshape(x.shape[:a] + (-1,)).sum(axis=-1)
    if operation == "MEAN":
        summed /= numpy.prod(x.shape[a:])
    numpy.testing.assert_allclose(top.data, -1.5 * summed, rtol=1e-12)
    assert top.shape == x.shape[:a]                # every axis from `axis` on; axis 0 gives a 0-d top
    check_layer_gradient(layer("Reduction", params), [x])


def embed(params="embed_param { num_output: 3 input_dim: 5 weight_filler { type: 'gaussian' } "
                 "bias_filler { type: 'gaussian' } }"):
    return layer("Embed", params)


def test_embed():
    index = numpy.array([[0, 4, 2], [2, 2, 1]], dtype=numpy.float64)
    e = embed()
    _, (top,) = run_layer(e, index)
    w, b = e.blobs[0].data, e.blobs[1].data
    numpy.testing.assert_array_equal(top.data, w[index.astype(int)] + b)
    assert top.shape == (2, 3, 3) and w.shape == (5, 3)
    check_layer_gradient(embed(), [index], propagate_down=[False])     # item 2 is looked up three times
    check_layer_gradient(embed("embed_param { num_output: 2 input_dim: 3 bias_term: false "
                               "weight_filler { type: 'gaussian' } }"), [numpy.array([2.0, 0, 2])],
                         propagate_down=[False])


@pytest.mark.parametrize("value", [5, -1, 1.5])
def test_embed_refuses_bad_indices(value):
    with pytest.raises(ValueError, match=rf"Embed layer 'l': index {value:g} is not a whole number in \[0, 5\)"):
        run_layer(embed(), numpy.array([0, value], dtype=numpy.float32))


def test_embed_checks():
    with pytest.raises(ValueError, match=r"Embed layer 'l': embed_param.num_output and input_dim must be set"):
        run_layer(embed("embed_param { num_output: 3 }"), numpy.zeros(2))
    e = embed()
    bottoms, tops = run_layer(e, numpy.zeros(2))
    with pytest.raises(ValueError, match=r"Embed layer 'l': cannot back-propagate to the indices"):
        e.run_backward(tops, [True], bottoms)


def test_parameter_layer():
    p = make_layer('name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } }')
    top = [Blob(dtype=numpy.float64)]
    p.run_setup([], top)
    assert p.blobs[0].shape == (2, 3) and not p.blobs[0].data.any()
    value = rng.normal(size=(2, 3))
    p.blobs[0].data[...] = value
    p.run_forward([], top)
    numpy.testing.assert_array_equal(top[0].data, value)
    check_layer_gradient(make_layer('name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 4 } }'),
                         [])


def test_filter():
    x, g = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 5))
    selector = numpy.array([1, 0, -0.5, 2])
    f = layer("Filter", bottoms=("x", "g", "s"), tops=("xf", "gf"))
    bottoms, tops = [Blob(*a.shape, dtype=numpy.float64) for a in (x, g, selector)], [Blob(dtype=numpy.float64),
                                                                                        Blob(dtype=numpy.float64)]
    for b, a in zip(bottoms, (x, g, selector)):
        b.data[...] = a
    f.run_setup(bottoms, tops)
    assert tops[0].shape == (4, 2, 3)              # every item until the first forward, as Caffe's first Reshape
    f.run_forward(bottoms, tops)
    numpy.testing.assert_array_equal(tops[0].data, x[[0, 2, 3]])
    numpy.testing.assert_array_equal(tops[1].data, g[[0, 2, 3]])
    check_layer_gradient(layer("Filter", bottoms=("x", "g", "s"), tops=("xf", "gf")), [x, g, selector],
                         propagate_down=[True, True, False], top_count=2)
    bottoms[2].data[...] = 0
    f.run_forward(bottoms, tops)
    assert tops[0].shape == (0, 2, 3)
    with pytest.raises(ValueError, match=r"Filter layer 'l': cannot back-propagate to the selector"):
        f.run_backward(tops, [True, True, True], bottoms)


@pytest.mark.parametrize("bottoms,tops,shapes,message", [
    (("x", "s"), ("a", "b"), [(4, 2), (4,)], r"needs one top per filtered bottom: 1 top\(s\), got 2"),
    (("x", "s"), ("a",), [(4, 2), (4, 2)], r"the selector's axes after the first must be 1"),
    (("x", "s"), ("a",), [(4, 2), (3,)], r"bottom 0 has 4 items, the selector 3"),
])
def test_filter_checks(bottoms, tops, shapes, message):
    with pytest.raises(ValueError, match="Filter layer 'l': " + message):
        run_layer(layer("Filter", bottoms=bottoms, tops=tops), *[numpy.ones(s) for s in shapes], tops=len(tops))


def test_batch_reindex():
    x = rng.normal(size=(5, 2, 3))
    index = numpy.array([3.0, 0, 3, 1, 4, 3])
    _, (top,) = run_layer(layer("BatchReindex", bottoms=("x", "i")), x, index)
    numpy.testing.assert_array_equal(top.data, x[[3, 0, 3, 1, 4, 3]])
    check_layer_gradient(layer("BatchReindex", bottoms=("x", "i")), [x, index], propagate_down=[True, False])
    with pytest.raises(ValueError, match=r"BatchReindex layer 'l': index 5 is not a whole number in \[0, 5\)"):
        run_layer(layer("BatchReindex", bottoms=("x", "i")), x, numpy.array([5.0]))
    with pytest.raises(ValueError, match=r"BatchReindex layer 'l': the index bottom must be 1-D"):
        run_layer(layer("BatchReindex", bottoms=("x", "i")), x, numpy.zeros((2, 1)))


INDEXED = """force_backward: true
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 5 dim: 2 } } }
layer { name: "i" type: "Input" top: "i" top: "s" input_param { shape { dim: 4 } shape { dim: 5 } } }
layer { name: "re" type: "BatchReindex" bottom: "w" bottom: "i" top: "re" }
layer { name: "f" type: "Filter" bottom: "w" bottom: "s" top: "f" }
layer { name: "e" type: "Embed" bottom: "i" top: "e" embed_param { num_output: 2 input_dim: 5 } }
"""


def test_force_backward_leaves_indices_and_selectors_out():
    """Caffe aborts when force_backward reaches these bottoms; here they are left out (allow_force_backward)."""
    net = Net(INDEXED, phase="TRAIN")
    assert net.bottom_need_backward[-3:] == [[True, False], [True, False], [False]]
    net.forward(i=numpy.array([4, 0, 0, 2]), s=numpy.array([1, 0, 1, 0, 0]))
    net.backward(re=numpy.ones((4, 2)), f=numpy.ones((2, 2)), e=numpy.ones((4, 2)))
    numpy.testing.assert_array_equal(net.params["w"][0].diff[:, 0], [3, 0, 2, 0, 1])   # 2 + 1, 1, 1, 1


def test_hdf5_output_writes_both_bottoms_in_legacy_shapes(tmp_path):
    path = tmp_path / "out.h5"
    net = Net(f"""layer {{ name: "in" type: "Input" top: "feat" top: "lab"
                           input_param {{ shape {{ dim: 2 dim: 3 dim: 4 }} shape {{ dim: 2 }} }} }}
                 layer {{ name: "out" type: "HDF5Output" bottom: "feat" bottom: "lab"
                           hdf5_output_param {{ file_name: "{path}" }} }}""")
    with h5py.File(path, "r") as f:
        assert list(f) == []                        # created at setup, as Caffe's H5Fcreate
    for batch in range(2):                          # each forward rewrites the file with its batch
        feat, lab = rng.normal(size=(2, 3, 4)).astype(numpy.float32), numpy.array([batch, 1.0], numpy.float32)
        net.forward(feat=feat, lab=lab)
        with h5py.File(path, "r") as f:
            assert f["data"].shape == (2, 3, 4, 1) and f["label"].shape == (2, 1, 1, 1)
            numpy.testing.assert_array_equal(f["data"][()].reshape(feat.shape), feat)
            numpy.testing.assert_array_equal(f["label"][()].ravel(), lab)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]        # no temporary left behind
    with pytest.raises(ValueError, match=r"HDF5Output layer 'out': data and label must have the same batch"):
        net.forward(feat=numpy.zeros((3, 3, 4)), lab=numpy.zeros(2))
    with pytest.raises(ValueError, match=r"HDF5Output layer 'out': cannot write .*/missing/out.h5"):
        Net(f"""layer {{ name: "in" type: "Input" top: "a" top: "b" input_param {{ shape {{ dim: 1 }} }} }}
                layer {{ name: "out" type: "HDF5Output" bottom: "a" bottom: "b"
                          hdf5_output_param {{ file_name: "{tmp_path}/missing/out.h5" }} }}""")

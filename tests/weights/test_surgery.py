"""weights.surgery: bilinear kernels, transplant, convolutionalize (paper section 3.1) and the stage hand-off."""
import numpy as np
import pytest

from layers import Net, backend, fillers, rng
from netspec import io
from tests.weights import toy_nets
from weights import caffemodel, surgery


def seeded(prototxt, seed):
    rng.seed(seed)
    return Net(prototxt)


# ---- upsample_filt / interp -------------------------------------------------------------------

def test_upsample_filt_hand_derived():
    one_d = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(surgery.upsample_filt(4), np.outer(one_d, one_d))
    np.testing.assert_array_equal(surgery.upsample_filt(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    # k63 (FCN-AlexNet): factor 32, centred on tap 31, which gets weight 1
    k63 = surgery.upsample_filt(63)
    assert k63[31, 31] == 1 and k63[0, 31] == pytest.approx(1 / 32)


@pytest.mark.parametrize("size", [4, 8, 16, 32, 64])
def test_upsample_filt_equals_caffes_bilinear_filler_for_even_sizes(size):
    caffe = fillers.bilinear((1, 1, size, size))[0, 0]
    np.testing.assert_allclose(surgery.upsample_filt(size), caffe, rtol=0, atol=1e-7)


def test_interp_sets_the_diagonal_and_zeroes_the_rest():
    net = seeded(toy_nets.NET_2S, 1)
    net.params["upscore2"][0].data[...] = 7            # stale values off the diagonal must go
    assert surgery.interp(net) == ["upscore2", "upscore4"]
    for name in ("upscore2", "upscore4"):
        w = net.params[name][0].data
        for i in range(3):
            for j in range(3):
                expected = surgery.upsample_filt(4) if i == j else np.zeros((4, 4))
                np.testing.assert_array_equal(w[i, j], expected.astype(np.float32))


def test_interp_upsamples_a_constant_map_to_a_constant_interior():
    net = seeded(toy_nets.NET_4S, 2)
    surgery.interp(net, ["upscore"])
    net.forward(data=np.zeros((1, 3, 16, 16), np.float32))
    net.blobs["score_fr"].data[...] = np.arange(3, dtype=np.float32)[None, :, None, None] + 1
    out = net.forward(start="upscore")["score"]
    for c in range(3):
        np.testing.assert_allclose(out[0, c], c + 1, rtol=1e-6)


def test_interp_refuses_non_square_layers():
    prototxt = toy_nets.data(4, 4) + toy_nets.deconv("up", "data", 4, 2, n=5)
    net = Net(prototxt)
    with pytest.raises(ValueError, match=r"'up' has weight shape \(3, 5, 4, 4\).*C x C x k x k"):
        surgery.interp(net)
    with pytest.raises(ValueError, match="no Deconvolution layer 'upscore'"):
        surgery.interp(net, ["upscore"])
    net = Net(toy_nets.NET_4S)
    with pytest.raises(ValueError, match="'conv1' is a Convolution layer"):
        surgery.interp(net, ["conv1"])


# ---- transplant -------------------------------------------------------------------------------

def test_transplant_copies_reshapes_skips_and_reports(tmp_path):
    classifier = seeded(toy_nets.CLASSIFIER, 3)
    fcn = Net(toy_nets.fcn(12, 10, with_fc8=False))
    report = surgery.transplant(fcn, classifier)
    assert report.names("copied") == ["conv1[0]", "conv1[1]", "fc6[1]", "fc7[1]"]
    assert report.reshaped == [("fc6[0]", "16x100 -> 16x5x5x4"), ("fc7[0]", "12x16 -> 12x16x1x1")]
    assert report.names("dropped") == ["fc8"] and report.names("untouched") == ["score_fr"]
    np.testing.assert_array_equal(fcn.params["fc6"][0].data.reshape(16, -1), classifier.params["fc6"][0].data)
    # from a weights file, and with a count that does not fit: reported, nothing written
    classifier.save(tmp_path / "cls.caffemodel.h5")
    small = Net(toy_nets.data(12, 10) + toy_nets.conv("conv1", "data", 5, 2))
    before = small.params["conv1"][0].data.copy()
    report = surgery.transplant(small, tmp_path / "cls.caffemodel.h5")
    assert report.skipped == [("conv1[0]", "135 values (5, 3, 3, 3) do not fit 60 (5, 3, 2, 2)")]
    assert report.names("copied") == ["conv1[1]"]
    np.testing.assert_array_equal(small.params["conv1"][0].data, before)


def test_transplant_suffix_fills_one_net_from_two():
    """NYUD color-hha style: two nets' layers land in suffixed copies of one net."""
    streams = toy_nets.data(12, 10) + "".join(
        toy_nets.conv(f"conv1{s}", "data", 5, 3) for s in ("color", "hha"))
    fused = Net(streams)
    color, hha = seeded(toy_nets.CLASSIFIER, 4), seeded(toy_nets.CLASSIFIER, 5)
    surgery.transplant(fused, color, suffix="color")
    report = surgery.transplant(fused, hha, suffix="hha")
    assert report.names("copied") == ["conv1hha[0]", "conv1hha[1]"] and "conv1colorhha" not in str(report)
    np.testing.assert_array_equal(fused.params["conv1color"][0].data, color.params["conv1"][0].data)
    np.testing.assert_array_equal(fused.params["conv1hha"][0].data, hha.params["conv1"][0].data)


# ---- convolutionalize -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cls") / "classifier.caffemodel"
    seeded(toy_nets.CLASSIFIER, 6).save(path)
    return path


def test_convolutionalized_net_scores_every_patch_as_the_classifier_does(classifier_file):
    """Paper section 3.1: the FCN's output at (i, j) is the classifier's score of the patch at (2i, 2j)."""
    param, report = surgery.convolutionalize(classifier_file, classifier=toy_nets.CLASSIFIER, drop=[])
    assert report.converted == [("fc6", "InnerProduct 16x100 -> Convolution 16x5x5x4"),
                                ("fc7", "InnerProduct 12x16 -> Convolution 12x16x1x1"),
                                ("fc8", "InnerProduct 4x12 -> Convolution 4x12x1x1")]
    (ph, pw), s = toy_nets.PATCH, toy_nets.STRIDE
    h, w = ph + 4 * s, pw + 3 * s
    fcn = Net(toy_nets.fcn(h, w))
    fcn.copy_from_proto(param)
    classifier = Net(toy_nets.CLASSIFIER, weights=str(classifier_file))
    image = np.random.default_rng(7).standard_normal((1, 3, h, w)).astype(np.float32)
    scores = fcn.forward(data=image)["fc8"].copy()
    assert scores.shape == (1, 4, 5, 4)
    for i in range(scores.shape[2]):
        for j in range(scores.shape[3]):
            patch = image[:, :, s * i:s * i + ph, s * j:s * j + pw]
            expected = classifier.forward(data=patch)["fc8"][0]
            np.testing.assert_allclose(scores[0, :, i, j], expected, rtol=1e-5, atol=1e-6)


def test_convolutionalize_drops_the_classifier_the_same_way_from_every_input(classifier_file, tmp_path):
    by_geometry, report = surgery.convolutionalize(classifier_file, classifier=toy_nets.CLASSIFIER)
    assert report.names("dropped") == ["fc8"] and report.names("copied") == ["conv1"]
    by_fcn, report = surgery.convolutionalize(classifier_file, fcn=toy_nets.fcn(20, 16, with_fc8=False))
    assert report.dropped == [("fc8", "not in the FCN net")] and report.names("untouched") == ["score_fr"]
    by_shapes, _ = surgery.convolutionalize(classifier_file, fc_shapes={"fc6": (5, 5, 4), "fc7": (16, 1, 1)},
                                            drop=["fc8"])
    # an HDF5 copy of the classifier has no types: the deploy prototxt supplies them
    caffemodel.convert(classifier_file, tmp_path / "cls.caffemodel.h5")
    by_h5, _ = surgery.convolutionalize(tmp_path / "cls.caffemodel.h5", classifier=toy_nets.CLASSIFIER)
    for other in (by_fcn, by_shapes, by_h5):
        assert [(l.name, l.type) for l in other.layer] == [(l.name, l.type) for l in by_geometry.layer] == [
            ("conv1", "Convolution"), ("fc6", "Convolution"), ("fc7", "Convolution")]
        for a, b in zip(other.layer, by_geometry.layer):
            for x, y in zip(a.blobs, b.blobs):
                assert io.blob_shape(x) == io.blob_shape(y) and x.data == y.data
    # the result is what the FCN net loads (Caffe's copy_from: names and shapes must fit)
    Net(toy_nets.fcn(20, 16, with_fc8=False)).copy_from_proto(by_geometry)


def test_convolutionalize_vgg_shaped_fc6():
    """VGG16's geometry at a tenth of the width: fc6 takes pool5's 51 x 7 x 7 and becomes 409x51x7x7."""
    from netspec import caffe_pb2 as pb
    weights = pb.NetParameter()
    for name, shape in (("fc6", (409, 51 * 7 * 7)), ("fc7", (409, 409)), ("fc8", (100, 409))):
        layer = weights.layer.add(name=name, type="InnerProduct")
        layer.blobs.add().CopyFrom(io.array_to_blob(np.zeros(shape, np.float32)))
        layer.blobs.add().CopyFrom(io.array_to_blob(np.zeros(shape[0], np.float32)))
    deploy = (toy_nets.data(14, 14, c=51) + toy_nets.pool("pool5", "data") + toy_nets.ip("fc6", "pool5", 409)
              + toy_nets.ip("fc7", "fc6", 409) + toy_nets.ip("fc8", "fc7", 100))
    param, report = surgery.convolutionalize(weights, classifier=deploy)
    assert [io.blob_shape(l.blobs[0]) for l in param.layer] == [(409, 51, 7, 7), (409, 409, 1, 1)]
    assert report.names("dropped") == ["fc8"]


def test_convolutionalize_errors_name_the_layer(classifier_file):
    with pytest.raises(ValueError, match="'fc6' has weight shape \\(16, 100\\).*5 x 5 x 5 input"):
        surgery.convolutionalize(classifier_file, fc_shapes={"fc6": (5, 5, 5), "fc7": (16, 1, 1)})
    bad_fcn = toy_nets.fcn(20, 16).replace('kernel_h: 5 kernel_w: 4', 'kernel_h: 3 kernel_w: 3')
    with pytest.raises(ValueError, match="'fc6' takes 100 inputs per output, not a whole number of 3 x 3"):
        surgery.convolutionalize(classifier_file, fcn=bad_fcn)
    with pytest.raises(ValueError, match="need the classifier's deploy prototxt"):
        surgery.convolutionalize(classifier_file)


# ---- stage hand-off ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stages():
    coarse = seeded(toy_nets.NET_4S, 8)
    surgery.interp(coarse)
    fine = seeded(toy_nets.NET_2S, 9)
    report = surgery.handoff(fine, coarse)
    image = np.random.default_rng(10).standard_normal((1, 3, 16, 16)).astype(np.float32)
    return coarse, fine, report, image


def test_handoff_report(stages):
    _, fine, report, _ = stages
    assert report.names("copied") == ["conv1", "conv2", "fc6", "score_fr"]
    assert report.names("bilinear") == ["upscore2", "upscore4"]
    assert report.names("zeroed") == ["score_pool1"] and report.names("dropped") == ["upscore"]
    assert not fine.params["score_pool1"][0].data.any() and not fine.params["score_pool1"][1].data.any()


def test_handoff_skip_adds_nothing(stages):
    """With score_pool1 at zero, the fused map is exactly the 2x upsampled coarse score, whose input is
    exactly the coarse net's score_fr."""
    coarse, fine, _, image = stages
    coarse.forward(data=image)
    fine.forward(data=image)
    np.testing.assert_array_equal(fine.blobs["score_fr"].data, coarse.blobs["score_fr"].data)
    np.testing.assert_array_equal(fine.blobs["fuse_pool1"].data, fine.blobs["upscore2"].data)
    # the property depends on the zero init: a nonzero skip changes the fused map
    fine.params["score_pool1"][1].data[...] = 1
    fine.forward(data=image)
    assert not np.array_equal(fine.blobs["fuse_pool1"].data, fine.blobs["upscore2"].data)
    fine.params["score_pool1"][1].data[...] = 0


def test_handoff_predictions_match_where_bilinear_steps_compose(stages):
    """Two 2x bilinear steps equal one 4x step exactly on a score map that is affine in space (what bilinear
    interpolation reproduces), so both stages predict the same there, and the crops line up. On a general
    map they differ by a fraction of the map's second differences: 2x-then-2x is not one 4x interpolation."""
    coarse, fine, _, image = stages
    coarse.forward(data=image)
    fine.forward(data=image)
    rows, cols = np.mgrid[0:7, 0:7]
    ramp = np.stack([0.3 * rows - 0.2 * cols + 1, -0.1 * rows + 0.5 * cols, 0.7 * rows]).astype(np.float32)[None]
    coarse.blobs["score_fr"].data[...] = ramp
    fine.blobs["score_fr"].data[...] = ramp
    np.testing.assert_allclose(fine.forward(start="upscore2")["score"], coarse.forward(start="upscore")["score"],
                               rtol=1e-5, atol=1e-5)


def test_surgery_on_a_gpu_net_matches_the_cpu(stages, device):
    coarse, fine_cpu, _, image = stages
    fine = seeded(toy_nets.NET_2S, 9).to_device(device)
    surgery.handoff(fine, coarse)
    for name, blobs in fine_cpu.params.items():
        for a, b in zip(blobs, fine.params[name]):
            np.testing.assert_array_equal(a.data, backend.to_cpu(b.data))
    expected = fine_cpu.forward(data=image)["score"].copy()
    np.testing.assert_allclose(backend.to_cpu(fine.forward(data=image)["score"]), expected, rtol=1e-5, atol=1e-6)
    report = surgery.transplant(Net(toy_nets.NET_4S), fine)          # a GPU net as the source
    assert report.names("untouched") == ["upscore"]


def test_handoff_shape_mismatch_names_layer_param_shapes_and_rename(tmp_path):
    coarse = seeded(toy_nets.NET_4S, 11)
    coarse.save(tmp_path / "coarse.caffemodel")
    fine = Net(toy_nets.NET_2S.replace(toy_nets.conv("fc6", "pool2", 8, 3), toy_nets.conv("fc6", "pool2", 9, 3)))
    with pytest.raises(ValueError) as error:
        surgery.handoff(fine, tmp_path / "coarse.caffemodel")
    message = str(error.value)
    for part in ("coarse.caffemodel", "param 0 of layer 'fc6'", "(8, 6, 3, 3)", "(9, 6, 3, 3)", "rename the layer"):
        assert part in message

"""Shift-and-stitch and filter rarefaction give the same dense output (FCN section 3.2): on small nets and on
FCN-32s's geometry (VGG16's layers, few channels) at a small input, forward to 1e-5; the stitch's stride-f
subsample is the net's own output; and python -m solver.infer labels images with either."""
import numpy
import pytest
from PIL import Image

from layers import Net
from netspec import io as netio
from netspec.rarefy import input_map, rarefy
from solver.infer import main as infer_main
from solver.shift_stitch import shift_and_stitch, shift_and_stitch_layerwise, stitch
from tests.netspec.test_rarefy import FCN32S

FILLERS = 'weight_filler { type: "gaussian" std: 0.4 } bias_filler { type: "gaussian" std: 0.3 }'


def conv(name, bottom, n, k, stride=1, pad=0):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" convolution_param {{ '
            f'num_output: {n} kernel_size: {k} stride: {stride} pad: {pad} {FILLERS} }} }}\n')


def pool(name, bottom, k, stride, method="MAX"):
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" pooling_param {{ '
            f'pool: {method} kernel_size: {k} stride: {stride} }} }}\n')


def relu(name):
    return f'layer {{ name: "relu_{name}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'


INPUT = 'layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 32 dim: 32 } } }\n'
# padding between the strided layers, MAX and AVE pooling, a strided convolution: output stride 2 * 2 * 2 = 8
PADDED = (INPUT + conv("conv1", "data", 3, 3, pad=1) + relu("conv1") + pool("pool1", "conv1", 2, 2)
          + conv("conv2", "pool1", 4, 3, pad=1) + relu("conv2") + pool("pool2", "conv2", 3, 2, "AVE")
          + conv("conv3", "pool2", 3, 2, stride=2) + relu("conv3") + conv("score", "conv3", 2, 3, pad=1))
# no padding before the last strided layer: there shifting the input is exact too
UNPADDED = (INPUT + conv("conv1", "data", 3, 3) + relu("conv1") + pool("pool1", "conv1", 2, 2)
            + conv("conv2", "pool1", 4, 3) + relu("conv2") + pool("pool2", "conv2", 2, 2)
            + conv("score", "pool2", 2, 1))


def image(shape, seed=0):
    return numpy.random.default_rng(seed).normal(size=shape).astype(numpy.float32)


def rarefied_like(net, text, blob):
    dense = Net(rarefy(text, blob))
    dense.share_with(net)
    return dense


def assert_close(a, b):
    assert a.shape == b.shape
    numpy.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * max(1.0, float(numpy.abs(b).max())))


@pytest.mark.parametrize("size", [(29, 27), (32, 24)])
def test_layerwise_stitch_equals_the_rarefied_net(size):
    net = Net(PADDED)
    x = image((2, 2) + size)
    dense = rarefied_like(net, PADDED, "score").forward(data=x)["score"]
    assert_close(shift_and_stitch_layerwise(net, "score", x), dense)


@pytest.mark.parametrize("size", [(29, 27), (26, 31)])
def test_shifted_inputs_equal_the_rarefied_net_without_padding_before_the_strides(size):
    net = Net(UNPADDED)
    x = image((1, 2) + size, seed=1)
    dense = rarefied_like(net, UNPADDED, "score").forward(data=x)["score"]
    stitched = shift_and_stitch(net, "score", x)
    h, w = dense.shape[-2:]                         # ceil pooling adds clipped windows past the rarefied net's end
    assert stitched.shape[-2] >= h and stitched.shape[-1] >= w
    assert_close(stitched[..., :h, :w], dense)


def test_shifted_inputs_differ_from_the_rarefied_net_only_near_padded_borders():
    net = Net(PADDED)
    x = image((1, 2, 64, 64), seed=2)
    dense = rarefied_like(net, PADDED, "score").forward(data=x)["score"]
    h, w = dense.shape[-2:]
    diff = numpy.abs(shift_and_stitch(net, "score", x)[..., :h, :w] - dense).max(axis=(0, 1))
    assert diff.max() > 1e-3                        # the borders differ: the shifted pads meet other pixels
    assert diff[16:h - 16, 16:w - 16].max() < 1e-5  # two output strides in, the interior agrees


@pytest.mark.parametrize("text", [PADDED, UNPADDED])
def test_the_stitch_subsampled_at_the_output_stride_is_the_nets_output(text):
    net = Net(text)
    x = image((1, 2, 29, 27), seed=3)
    (fh, fw), _ = input_map(text, "score")
    assert (fh, fw) == ((8, 8) if text is PADDED else (4, 4))
    coarse = net.forward(data=x)["score"].copy()
    assert_close(shift_and_stitch(net, "score", x)[..., ::fh, ::fw], coarse)


def fcn32s_geometry(size, width=3):
    """FCN-32s's deploy net (VGG16's kernels, pads and strides; pad 100) with `width` channels everywhere."""
    param = netio.read_net(FCN32S)
    for lp in param.layer:
        if lp.type in ("Convolution", "Deconvolution"):
            lp.convolution_param.num_output = {"score_fr": 2, "upscore": 2}.get(lp.name, width)
        if lp.type == "Input":
            del lp.input_param.shape[0].dim[:]
            lp.input_param.shape[0].dim.extend([1, 3, size, size])
    net = Net(param)
    rng = numpy.random.default_rng(size)
    for blobs in net.params.values():
        for b in blobs:                             # unit-variance activations through the 16 layers
            b.data[...] = rng.normal(size=b.shape) / numpy.sqrt(numpy.prod(b.shape[1:]) / 2)
    return param, net


@pytest.mark.parametrize("size", [58, 45])
def test_fcn32s_geometry_rarefied_equals_shift_and_stitch(size, tmp_path):
    param, net = fcn32s_geometry(size)
    net.save(str(tmp_path / "fcn32s.caffemodel"))
    dense_net = Net(rarefy(param, "score_fr"), weights=str(tmp_path / "fcn32s.caffemodel"))   # the same weights
    x = image((1, 3, size, size), seed=4)
    dense = dense_net.forward(data=x)["score_fr"]
    assert dense.shape == (1, 2, size - 25, size - 25)   # pad 100, 2x2 pools at stride 1, fc6 7x7 rarefied by 32
    assert numpy.abs(dense).max() > 0.1
    assert_close(shift_and_stitch_layerwise(net, "score_fr", x), dense)
    if (size + 198) % 32 == 0:                      # no ceil-clipped pooling window: the stitch holds the net's own
        coarse = net.forward(data=x, blobs=["score_fr"])["score_fr"]
        assert_close(dense[..., ::32, ::32], coarse)


def test_stitch_refuses_pieces_that_leave_holes():
    pieces = [((0, 0), numpy.zeros((1, 1, 2, 2))), ((1, 1), numpy.zeros((1, 1, 2, 2)))]
    with pytest.raises(ValueError, match="8 positions missing"):
        stitch(pieces, (2, 2))


# -------------------------------------------------------------------- python -m solver.infer
ONE_BY_ONE = (INPUT.replace("dim: 2", "dim: 3") + conv("score_px", "data", 4, 1) + pool("score", "score_px", 1, 2))


def test_infer_dense_labels_match_the_per_pixel_net(tmp_path):
    """A 1x1 convolution scored at stride 2: made dense, its label is the 1x1 convolution's at every pixel."""
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(ONE_BY_ONE)
    net = Net(str(deploy))
    net.save(str(tmp_path / "w.caffemodel"))
    path = tmp_path / "im.png"
    rgb = numpy.random.default_rng(5).integers(0, 256, (9, 14, 3), dtype=numpy.uint8)
    Image.fromarray(rgb).save(path)
    per_pixel = net.forward(data=(rgb[:, :, ::-1].astype(numpy.float32) - [1, 2, 3]).transpose(2, 0, 1)[None],
                            blobs=["score_px"])["score_px"][0].argmax(0)
    for option in ("--shift-and-stitch", "--rarefy"):
        infer_main([str(deploy), str(tmp_path / "w.caffemodel"), str(path), "--mean", "1,2,3", "--out",
                    str(tmp_path / option), option, "score"])
        label = numpy.array(Image.open(tmp_path / option / "im.png"))
        numpy.testing.assert_array_equal(label, per_pixel)

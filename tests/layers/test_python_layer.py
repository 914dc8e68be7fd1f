"""The "Python" layer: a pycaffe-style module beside a prototxt, built by Net from that path, checked against
numpy and central differences; module lookup (prototxt folder, sys.path, layers.data) and its errors."""
import textwrap

import numpy
import pytest

from layers import Net, caffe_compat
from layers.data.voc_layers import VOCSegDataLayer

# A pycaffe layer module as users write them; only the import line differs from pycaffe.
MODULE = '''
import numpy as np

from layers import caffe_compat as caffe


class ArrayData(caffe.Layer):
    """Tops data and label: fixed random arrays, shape and seed from param_str."""

    def setup(self, bottom, top):
        params = eval(self.param_str)
        if len(top) != 2:
            raise Exception("Need two tops: data and label.")
        rng = np.random.RandomState(params["seed"])
        self.data = rng.randn(*params["shape"])
        self.label = rng.randn(*params["shape"])
        self.phase_seen = self.phase
        self.forwards = 0

    def reshape(self, bottom, top):
        top[0].reshape(*self.data.shape)
        top[1].reshape(*self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.data
        top[1].data[...] = self.label
        self.forwards += 1

    def backward(self, top, propagate_down, bottom):
        pass


class ChannelScale(caffe.Layer):
    """y = x * w[c], with w a learnable param of one value per channel."""

    def setup(self, bottom, top):
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data[None, :, None, None]

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(axis=(0, 2, 3))
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data[None, :, None, None]


class EuclideanLoss(caffe.Layer):
    """Sum of squared differences / 2N (cf. caffe examples/pycaffe/layers/pyloss.py)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("Need two inputs to compute distance.")

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                bottom[i].diff[...] = (1 if i == 0 else -1) * self.diff / bottom[i].num
'''

NET = '''
name: "pynet"
layer { name: "data" type: "Python" top: "data" top: "label"
        python_param { module: "MODULE" layer: "ArrayData" param_str: "{'seed': 1, 'shape': (2, 3, 4, 5)}" } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "cscale" type: "Python" bottom: "conv" top: "scaled"
        python_param { module: "MODULE" layer: "ChannelScale" } }
layer { name: "loss" type: "Python" bottom: "scaled" bottom: "label" top: "loss"
        python_param { module: "MODULE" layer: "EuclideanLoss" } loss_weight: 1 }
'''


def write_net(folder, module="pylayers_a", body=MODULE, net=NET):
    (folder / f"{module}.py").write_text(body)
    path = folder / "train.prototxt"
    path.write_text(net.replace("MODULE", module))
    return str(path)


def test_pycaffe_module_beside_the_prototxt_runs_forward_and_backward(tmp_path):
    net = Net(write_net(tmp_path), phase="TRAIN", dtype=numpy.float64)
    data_layer = net.layer_dict["data"]
    assert data_layer.phase_seen == caffe_compat.TRAIN and data_layer.phase_seen != caffe_compat.TEST
    assert list(net.params) == ["conv", "cscale"] and net.params["cscale"][0].shape == (3,)
    assert net.learnable_params[-1] is net.params["cscale"][0]

    net.params["cscale"][0].data[...] = [0.5, -1.0, 2.0]
    out = net.forward()
    assert data_layer.forwards == 1
    x, label = net.blobs["data"].data, net.blobs["label"].data
    numpy.testing.assert_array_equal(x, numpy.random.RandomState(1).randn(2, 3, 4, 5))
    scaled = net.blobs["conv"].data * numpy.array([0.5, -1.0, 2.0])[None, :, None, None]
    want = ((scaled - label) ** 2).sum() / 2 / 2
    assert float(out["loss"][0]) == pytest.approx(want, rel=1e-12)
    assert net.loss == pytest.approx(want, rel=1e-12)

    net.clear_param_diffs()
    net.backward()
    eps = 1e-6
    rng = numpy.random.default_rng(0)
    conv_w = net.params["conv"][0]
    checks = [(net.params["cscale"][0], i) for i in range(3)]
    checks += [(conv_w, i) for i in rng.choice(conv_w.count, 8, replace=False)]
    checks += [(net.params["conv"][1], i) for i in range(3)]
    for blob, i in checks:
        flat = blob.data.reshape(-1)
        keep = flat[i]
        flat[i] = keep + eps
        up = net.forward()["loss"][0]
        flat[i] = keep - eps
        down = net.forward()["loss"][0]
        flat[i] = keep
        numeric = (up - down) / (2 * eps)
        assert blob.diff.reshape(-1)[i] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_module_on_sys_path_and_phase_test(tmp_path, monkeypatch):
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "pylayers_syspath.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(elsewhere))
    net = Net(NET.replace("MODULE", "pylayers_syspath"), phase="TEST")      # built from text: no folder
    assert net.layer_dict["data"].phase_seen == caffe_compat.TEST
    assert net.forward()["loss"].shape == (1,)


def test_bundled_data_layer_is_the_fallback(tmp_path):
    """The reference prototxts' `module: "voc_layers"` resolves to layers.data.voc_layers."""
    from PIL import Image
    voc = tmp_path / "voc"
    for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (voc / sub).mkdir(parents=True)
    (voc / "ImageSets/Segmentation/seg11valid.txt").write_text("img1\n")
    Image.fromarray(numpy.zeros((6, 7, 3), numpy.uint8)).save(voc / "JPEGImages/img1.jpg")
    label = Image.fromarray(numpy.full((6, 7), 3, numpy.uint8), mode="L").convert("P")
    label.save(voc / "SegmentationClass/img1.png")
    param = f"{{'voc_dir': '{voc}', 'split': 'seg11valid', 'mean': (104.00699, 116.66877, 122.67892)}}"
    net = Net(f'layer {{ name: "data" type: "Python" top: "data" top: "label" python_param {{ '
              f'module: "voc_layers" layer: "VOCSegDataLayer" param_str: "{param}" }} }}', phase="TEST")
    assert isinstance(net.layer_dict["data"].impl, VOCSegDataLayer)
    out = net.forward()
    assert out["data"].shape == (1, 3, 6, 7) and out["label"].shape == (1, 1, 6, 7)
    assert (out["label"] == 3).all()


def build_error(tmp_path, body, layer="ArrayData", module="pylayers_err"):
    path = write_net(tmp_path, module, body, NET.replace('layer: "ArrayData"', f'layer: "{layer}"'))
    with pytest.raises(ValueError) as info:
        Net(path)
    return str(info.value)


def test_errors_name_the_layer_module_class_and_where_it_looked(tmp_path):
    net = 'layer { name: "data" type: "Python" top: "d" python_param { module: "no_such_mod" layer: "L" } }'
    (tmp_path / "net.prototxt").write_text(net)
    with pytest.raises(ValueError) as info:
        Net(str(tmp_path / "net.prototxt"))
    msg = str(info.value)
    for part in ("Python layer 'data'", "module 'no_such_mod'", "class 'L'", str(tmp_path), "sys.path",
                 "layers.data"):
        assert part in msg

    msg = build_error(tmp_path, MODULE, layer="Missing")
    assert "Python layer 'data'" in msg and "has no class 'Missing'" in msg and "ArrayData, ChannelScale" in msg

    msg = build_error(tmp_path, "import not_a_real_package_xyz\n", module="pylayers_broken")
    assert "Python layer 'data'" in msg and "importing module 'pylayers_broken'" in msg
    assert "not_a_real_package_xyz" in msg and "pylayers_broken.py" in msg

    plain = "class ArrayData:\n    def forward(self, bottom, top): pass\n"
    msg = build_error(tmp_path, plain, module="pylayers_plain")
    assert "must be a class derived from caffe.Layer" in msg and "caffe_compat as caffe" in msg

    with pytest.raises(ValueError, match=r"Python layer 'p': python_param needs both `module`"):
        Net('layer { name: "p" type: "Python" top: "d" python_param { module: "x" } }')


def test_a_layer_without_forward_says_so(tmp_path):
    body = textwrap.dedent('''
        from layers import caffe_compat as caffe
        class ArrayData(caffe.Layer):
            def reshape(self, bottom, top):
                top[0].reshape(1)
                top[1].reshape(1)
    ''')
    net = Net(write_net(tmp_path, "pylayers_noforward", body,
                        'layer { name: "data" type: "Python" top: "a" top: "b" '
                        'python_param { module: "MODULE" layer: "ArrayData" } }'))
    with pytest.raises(NotImplementedError, match="ArrayData defines no forward"):
        net.forward()

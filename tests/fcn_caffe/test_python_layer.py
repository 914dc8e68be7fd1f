"""Python layers written against `import caffe` (or `import fcn_caffe as caffe`), as in pycaffe's
test_python_layer.py and test_python_layer_with_param_str.py: the layer module is a real file beside the
prototxt, loaded by the Net, and its caffe.Layer is the class the engine drives."""
import numpy as np
import pytest

from layers import caffe_compat
from tests.fcn_caffe.test_pycaffe import write

LAYERS_MODULE = '''{import_line}


class SimpleLayer(caffe.Layer):
    """Multiplies by ten."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError


class ParameterLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class SimpleParamLayer(caffe.Layer):
    """Multiplies by the number in its param_str."""

    def setup(self, bottom, top):
        try:
            self.value = float(self.param_str)
        except ValueError:
            raise ValueError("Parameter string must be a legible float")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff
'''

INPUT = "name: 'pythonnet' force_backward: true input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n"


def python_layer(name, cls, bottom="data", top=None, param_str=None):
    param = f" param_str: '{param_str}'" if param_str is not None else ""
    bottoms = f"bottom: '{bottom}' " if bottom else ""
    return (f"layer {{ type: 'Python' name: '{name}' {bottoms}top: '{top or name}'\n"
            f"  python_param {{ module: 'pylayers' layer: '{cls}'{param} }} }}\n")


@pytest.fixture
def make_net(caffe, tmp_path, import_line):
    """make_net(text, phase): the net in tmp_path, beside the layer module pylayers.py."""
    (tmp_path / "pylayers.py").write_text(LAYERS_MODULE.format(import_line=import_line))

    def make(text, phase=caffe.TRAIN, name="net.prototxt"):
        return caffe.Net(write(tmp_path / name, text), phase)
    return make


@pytest.fixture
def net(make_net):
    return make_net(INPUT + python_layer("one", "SimpleLayer") + python_layer("two", "SimpleLayer", "one")
                    + python_layer("three", "SimpleLayer", "two"))


def test_the_layers_caffe_layer_is_the_engines(caffe):
    assert caffe.Layer is caffe_compat.Layer


def test_forward(net):
    net.blobs["data"].data[...] = 8
    net.forward()
    assert (net.blobs["three"].data == 10 ** 3 * 8).all()


def test_backward(net):
    net.blobs["three"].diff[...] = 7
    net.backward()
    assert (net.blobs["data"].diff == 10 ** 3 * 7).all()


def test_reshape(net):
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    for blob in net.blobs.values():
        assert blob.data.shape == (4, 4, 4, 4)


def test_an_exception_in_setup_propagates(caffe, make_net):
    with pytest.raises(RuntimeError):
        make_net(INPUT + python_layer("layer", "ExceptionLayer", top="top"), caffe.TEST)


def test_parameter_learns_saves_loads_and_shares(caffe, make_net, tmp_path):
    net = make_net(INPUT + python_layer("layer", "ParameterLayer", top="top"))
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert layer.blobs[0].data[0] == 1
    weights = str(tmp_path / "parameter.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1
    net2 = make_net(INPUT + python_layer("layer", "ParameterLayer", top="top"))
    net2.share_with(net)
    assert net2.layers[list(net2._layer_names).index("layer")].blobs[0].data[0] == 1


def test_phase(caffe, make_net):
    for phase in (caffe.TRAIN, caffe.TEST):
        net = make_net("name: 'pythonnet' force_backward: true\n" + python_layer("layer", "PhaseLayer", None,
                                                                                  "phase"), phase)
        assert net.forward()["phase"] == phase


def test_the_layer_in_net_layers_shows_the_int_phase(caffe, make_net):
    """pycaffe's net.layers[i] is the user's object, whose phase is caffe.TRAIN or caffe.TEST (an int)."""
    for phase in (caffe.TRAIN, caffe.TEST):
        net = make_net(INPUT + python_layer("one", "SimpleLayer"), phase)
        layer = net.layers[list(net._layer_names).index("one")]
        assert layer.phase == phase and isinstance(layer.phase, int)
        assert net.layer_dict["one"].phase == phase


def test_param_str(make_net):
    net = make_net(INPUT + python_layer("mul10", "SimpleParamLayer", param_str="10")
                   + python_layer("mul2", "SimpleParamLayer", "mul10", param_str="2"))
    net.blobs["data"].data[...] = 8
    net.forward()
    assert (net.blobs["mul2"].data == 2 * 10 * 8).all()
    net.blobs["mul2"].diff[...] = 7
    net.backward()
    assert (net.blobs["data"].diff == 2 * 10 * 7).all()


def test_a_bad_param_str_names_the_layer(make_net):
    with pytest.raises(ValueError, match=r"'mul'.*Parameter string must be a legible float"):
        make_net(INPUT + python_layer("mul", "SimpleParamLayer", param_str="ten"))


def test_python_is_a_registered_type(caffe):
    assert "Python" in caffe.layer_type_list()
    np.testing.assert_array_equal(sorted(caffe.layer_type_list()), caffe.layer_type_list())


def test_a_caffe_module_without_install_is_told_how(tmp_path):
    """`import fcn_caffe as caffe` alone leaves `import caffe` in a layer module unresolved: the error says why."""
    import fcn_caffe
    (tmp_path / "needs_caffe.py").write_text("import caffe\n")
    text = INPUT + python_layer("one", "SimpleLayer").replace("pylayers", "needs_caffe")
    with pytest.raises(ValueError, match=r"No module named 'caffe'; .*fcn_caffe\.install\(\).*python -m fcn_caffe"):
        fcn_caffe.Net(write(tmp_path / "net.prototxt", text), fcn_caffe.TEST)

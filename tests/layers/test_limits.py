"""Nets that cannot be built are refused with the layer, the shape and the bytes, before anything is allocated;
degenerate parameters get a message, not an arithmetic error; an empty net is refused; fillers draw in float32
without weight-sized float64 temporaries."""
import os
import pathlib
import subprocess
import sys
import tracemalloc

import numpy
import pytest

from layers import Net, fillers
from layers.blob import MemoryLimitError
from netspec import caffe_pb2
from netspec.errors import NetDefinitionError

ROOT = pathlib.Path(__file__).resolve().parents[2]
INPUT = ('layer {{ name: "data" type: "Input" top: "data" '
         'input_param {{ shape {{ dim: 1 dim: {c} dim: {h} dim: {w} }} }} }}\n')


def net_text(layer, c=3, h=8, w=8):
    return INPUT.format(c=c, h=h, w=w) + layer


def conv(**param):
    fields = " ".join(f"{k}: {v}" for k, v in {"num_output": 4, "kernel_size": 1, **param}.items())
    return f'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param {{ {fields} }} }}\n'


@pytest.mark.parametrize("text, words", [
    (net_text("", h=300000, w=300000), ["Input layer 'data'", "1 x 3 x 300000 x 300000", "1,080,000,000,000 bytes"]),
    (net_text(conv(num_output=2000000000)), ["Convolution layer 'conv'", "2000000000 x ", "bytes"]),
    (net_text(conv(kernel_size=100000), c=64), ["Convolution layer 'conv'", "4 x 64 x 100000 x 100000", "bytes"]),
    (net_text(conv(pad=5000000)), ["Convolution layer 'conv'", "blob of shape 1 x 4 x 10000008 x 10000008"]),
    (net_text('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
              'inner_product_param { num_output: 2000000000 } }'), ["InnerProduct layer 'fc'", "2000000000 x 192"]),
], ids=["input", "num_output", "kernel_size", "pad", "inner_product"])
def test_impossible_sizes_are_refused_before_allocation(text, words):
    with pytest.raises(MemoryLimitError) as e:
        Net(text)
    assert isinstance(e.value, ValueError) and "more than this machine's memory" in str(e.value)
    for word in words:
        assert word in str(e.value)


def test_a_forward_that_would_not_fit_names_the_layer():
    net = Net(net_text(conv()))
    net.layers[1].reshape = lambda bottom, top: top[0].reshape(1, 4, 300000, 300000)
    with pytest.raises(MemoryLimitError, match=r"Convolution layer 'conv': a blob of shape 1 x 4 x 300000 x 300000"):
        net.forward()


@pytest.mark.parametrize("layer, message", [
    (conv(group=0), "convolution_param.group must be at least 1, got 0"),
    (conv(group=0).replace("Convolution", "Deconvolution"), "convolution_param.group must be at least 1, got 0"),
    (conv(stride=0), "must be positive"),
    ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 2 stride: 0 } }',
     "Pooling layer 'p': kernel (2, 2) and stride (0, 0) must be positive"),
    ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 0 } }',
     "kernel (0, 0) and stride (1, 1) must be positive"),
    ('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 axis: 7 } }',
     "InnerProduct layer 'fc': axis 7 is out of range"),
    ('layer { name: "c" type: "Clip" bottom: "data" top: "c" clip_param { min: 2 max: 1 } }',
     "clip_param.min 2.0 is above max 1.0"),
    ('layer { name: "l" type: "Input" top: "label" input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }\n'
     'layer { name: "a" type: "Accuracy" bottom: "data" bottom: "label" top: "a" accuracy_param { top_k: 0 } }',
     "accuracy_param.top_k must be at least 1, got 0"),
], ids=["conv_group", "deconv_group", "conv_stride", "pool_stride", "pool_kernel", "ip_axis", "clip", "top_k"])
def test_degenerate_parameters_get_a_message(layer, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Net(net_text(layer))


def test_empty_and_comment_only_nets_are_refused(tmp_path):
    (tmp_path / "empty.prototxt").write_text("# only a comment\n\n")
    with pytest.raises(NetDefinitionError, match=r"empty\.prototxt: no layers \(the file is empty or holds only"):
        Net(str(tmp_path / "empty.prototxt"))
    with pytest.raises(NetDefinitionError, match="net 'x' has no layers"):
        Net(caffe_pb2.NetParameter(name="x"))
    with pytest.raises(NetDefinitionError, match="no layers in phase TEST"):
        Net('layer { name: "d" type: "Input" top: "d" include { phase: TRAIN } '
            'input_param { shape { dim: 1 } } }', phase="TEST")


def test_solver_refuses_an_empty_net_and_a_net_too_large_without_a_traceback(tmp_path):
    (tmp_path / "empty.prototxt").write_text("# nothing yet\n")
    (tmp_path / "big.prototxt").write_text(
        'layer { name: "data" type: "DummyData" top: "data" dummy_data_param { shape { dim: 100000 dim: 3 dim: 1000 '
        'dim: 1000 } } }\n')
    for net in ("empty", "big"):
        (tmp_path / f"{net}_solver.prototxt").write_text(
            f'net: "{net}.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 2\nsnapshot_prefix: "snap/{net}"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for net, words in (("empty", ["no layers", "empty or holds only comments"]),
                       ("big", ["DummyData layer 'data'", "100000 x 3 x 1000 x 1000", "1,200,000,000,000 bytes"])):
        done = subprocess.run([sys.executable, "-m", "solver", f"{net}_solver.prototxt"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert all(word in last for word in words) and f"{net}.prototxt" in done.stderr, last
    assert not (tmp_path / "snap").exists() or not list((tmp_path / "snap").iterdir())    # nothing trained or saved


def test_fillers_draw_float32_in_chunks_with_the_values_of_one_draw(monkeypatch):
    shape = (5, 3, 7, 7)
    for kind, params in (("gaussian", dict(std=0.5, mean=1)), ("uniform", dict(min=-2, max=3)), ("xavier", {}),
                         ("msra", {}), ("gaussian", dict(std=1, sparse=2)), ("positive_unitball", {})):
        filler = caffe_pb2.FillerParameter(type=kind, **params)
        whole = fillers.fill(filler, shape, rng=numpy.random.default_rng(7))
        monkeypatch.setattr(fillers, "CHUNK", 13)                  # many chunks, each a separate draw
        chunked = fillers.fill(filler, shape, rng=numpy.random.default_rng(7))
        monkeypatch.undo()
        assert chunked.dtype == numpy.float32 and chunked.shape == shape
        numpy.testing.assert_array_equal(chunked, whole)
    numpy.testing.assert_allclose(whole.reshape(5, -1).sum(1), 1, rtol=1e-5)      # positive_unitball
    expected = numpy.random.default_rng(7).normal(1, 0.5, shape).astype(numpy.float32)    # one float64 draw, cast
    numpy.testing.assert_array_equal(
        fillers.fill(caffe_pb2.FillerParameter(type="gaussian", std=0.5, mean=1), shape,
                     rng=numpy.random.default_rng(7)), expected)
    # a 64 MB weight: the peak is the float32 array and one chunk, not a 128 MB float64 temporary besides
    tracemalloc.start()
    fillers.fill(caffe_pb2.FillerParameter(type="gaussian", std=0.01), (4096, 4096), rng=numpy.random.default_rng(1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2 ** 20 + 3 * fillers.CHUNK * 8, peak

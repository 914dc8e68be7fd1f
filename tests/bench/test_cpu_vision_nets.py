"""bench/cpu_vision_nets.py: the run without the PyTorch peer prints our times and the profile with the shares of
BatchNorm + Scale + ReLU and depthwise convolution; where PyTorch is installed, its interpreter of the same
NetParameter gives our scores."""
import subprocess
import sys

import numpy
import pytest

from bench import cpu_vision_nets
from tests.conftest import ROOT


def test_a_run_without_the_peer_reports_times_and_the_profile():
    done = subprocess.run([sys.executable, "-m", "bench.cpu_vision_nets", "--no-torch", "--repeats", "1",
                           "--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "PyTorch: not installed (or --no-torch)" in out
    for model in ("resnet-50", "mobilenet-v1"):
        assert f"our profile, {model}" in out
    assert "Convolution (depthwise)" in out.split("our profile, mobilenet-v1")[1]
    assert out.count("BatchNorm + Scale + ReLU: ") == 2


def test_the_profile_puts_depthwise_convolution_apart():
    from layers import Net
    net = Net(cpu_vision_nets.deploy_param("mobilenet-v1"), phase="TEST")
    kinds = {layer.name: cpu_vision_nets.layer_kind(layer) for layer in net.layers}
    assert kinds["conv2_1/dw"] == kinds["conv6/dw"] == "Convolution (depthwise)"
    assert kinds["conv1"] == kinds["conv2_1/sep"] == kinds["fc7"] == "Convolution"


@pytest.mark.parametrize("model", ["mobilenet-v1", "resnet-50"])
def test_the_torch_peer_computes_our_scores(model):
    torch = pytest.importorskip("torch")
    from layers import Net
    param = cpu_vision_nets.deploy_param(model)
    net = Net(param, phase="TEST")
    weights = cpu_vision_nets.random_weights(net)
    for name, arrays in weights.items():
        for blob, value in zip(net.params[name], arrays):
            blob.data[...] = value
    x = cpu_vision_nets.image()
    ours = net.forward(data=x)["prob"]
    params = cpu_vision_nets.torch_params(param, weights, torch.contiguous_format)
    with torch.no_grad():
        theirs = cpu_vision_nets.torch_run(param, params, torch.from_numpy(x), "prob")["prob"].numpy()
    numpy.testing.assert_allclose(ours, theirs.reshape(ours.shape), rtol=1e-4, atol=1e-6)

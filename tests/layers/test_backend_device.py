"""Device selection without a GPU: a machine without CuPy never needs it (only layers/backend.py asks for it,
once, and nothing fails), and a machine with CuPy but no CUDA device runs on the CPU after one clear message."""
import json
import subprocess
import sys
import textwrap

import numpy
import pytest

from layers import Net, backend
from tests.conftest import ROOT

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""

BLOCK_CUPY = textwrap.dedent('''
    import importlib.abc, json, pkgutil, sys, traceback
    attempts = []

    class NoCupy(importlib.abc.MetaPathFinder):
        """As on a machine without CuPy: the import fails; who asked is recorded."""
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("cupy", "cupyx", "cupy_backends"):
                frames = [f.filename for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
                attempts.append([name, frames[-1]])
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoCupy())
    import numpy
    for package in ("netspec", "layers", "solver", "weights"):
        module = __import__(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not info.name.endswith("__main__"):
                __import__(info.name)
    from layers import Net, backend
    net = Net(sys.argv[1], phase="TRAIN", device="gpu")
    net.forward(data=numpy.ones((2, 3, 6, 5), numpy.float32))
    net.backward(pool=numpy.ones(net.blobs["pool"].shape, numpy.float32))
    print(json.dumps({"attempts": attempts, "loaded": sorted(m for m in sys.modules if m.startswith("cupy")),
                      "device": net.device, "cuda": backend.cuda_available()}))
''')


def test_a_machine_without_cupy_never_imports_it(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    done = subprocess.run([sys.executable, "-c", BLOCK_CUPY, str(tmp_path / "net.prototxt")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [] and result["cuda"] is False and result["device"] == "cpu"
    # the one place that asks is the backend's guarded import
    assert [[name, path.replace("\\", "/").endswith("layers/backend.py")] for name, path in result["attempts"]] == \
        [["cupy", True]], result["attempts"]
    assert done.stderr.count("running on the CPU") == 1


FAKE_CUPY = '''
"""CuPy as installed on a machine without a CUDA device or driver: it imports; asking for devices fails."""
import numpy


class ndarray:
    pass


def get_array_module(*arrays):
    return numpy


class CUDARuntimeError(RuntimeError):
    pass


class _Runtime:
    @staticmethod
    def getDeviceCount():
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


class cuda:
    runtime = _Runtime
'''

WITH_FAKE = textwrap.dedent('''
    import json, sys
    import numpy
    from layers import Net, backend
    assert backend.cupy is not None and backend.cupy.__file__.startswith(sys.argv[2])
    nets = [Net(sys.argv[1], device=d) for d in ("gpu", "gpu:0", 0)]
    outputs = [n.forward(data=numpy.ones((2, 3, 6, 5), numpy.float32))["pool"] for n in nets]
    print(json.dumps({"devices": [n.device for n in nets], "numpy": all(type(o) is numpy.ndarray for o in outputs),
                      "cuda": backend.cuda_available(), "count": backend.device_count()}))
''')


def test_cupy_without_a_device_falls_back_to_the_cpu_with_one_message(tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "cupy").mkdir()
    (tmp_path / "fake" / "cupy" / "__init__.py").write_text(FAKE_CUPY)
    (tmp_path / "net.prototxt").write_text(NET)
    env = {"PYTHONPATH": f"{tmp_path / 'fake'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", WITH_FAKE, str(tmp_path / "net.prototxt"), str(tmp_path / "fake")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"devices": ["cpu"] * 3, "numpy": True, "cuda": False, "count": 0}
    assert done.stderr.count("fcn-caffe: no usable CUDA device (CuPy missing or no GPU found): running on the CPU") == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_resolve_device_falls_back_once_when_cuda_is_unavailable(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    backend._warn_once.cache_clear()
    assert backend.resolve_device("gpu") == ("cpu", None)
    assert backend.resolve_device(1) == ("cpu", None)
    net = Net(NET, device="gpu:0")
    assert net.device == "cpu" and type(net.blobs["data"].data) is numpy.ndarray
    assert capsys.readouterr().err.count("running on the CPU") == 1
    backend._warn_once.cache_clear()


@pytest.mark.parametrize("request_, expected", [(None, ("cpu", None)), ("cpu", ("cpu", None))])
def test_cpu_requests_never_ask_for_cuda(monkeypatch, request_, expected):
    monkeypatch.setattr(backend, "device_count", lambda: pytest.fail("asked for CUDA devices"))
    assert backend.resolve_device(request_) == expected


def test_bad_device_requests_say_what_to_write(monkeypatch):
    with pytest.raises(ValueError, match="use 'cpu', 'gpu', 'gpu:N' or a GPU id"):
        backend.resolve_device("cuda")
    monkeypatch.setattr(backend, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"GPU 2 was asked for, but CuPy sees 1 CUDA device\(s\)"):
        backend.resolve_device("gpu:2")

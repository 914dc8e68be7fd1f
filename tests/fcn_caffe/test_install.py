"""The two ways in without changing a script: fcn_caffe.install() (every module's `import caffe` resolves here)
and `python -m fcn_caffe SCRIPT [ARGS]` / `-m MODULE`; and the layering (the runtime never imports this package)."""
import importlib
import os
import subprocess
import sys

import pytest

import fcn_caffe
import fcn_caffe.coord_map
import fcn_caffe.draw
import fcn_caffe.net_spec
import netspec.caffe_pb2

HELPER = """import caffe
import caffe.io
import caffe.draw
from caffe import layers as L, params as P
from caffe.net_spec import NetSpec, to_proto
from caffe.proto import caffe_pb2
from caffe.coord_map import crop, coord_map_from_to
import caffe.pycaffe

MODULES = [caffe, caffe.io, caffe.draw, caffe.proto.caffe_pb2, caffe.net_spec, caffe.coord_map, caffe.pycaffe]
NAMES = [L, P, NetSpec, to_proto, caffe_pb2, crop, coord_map_from_to]
"""


def run_python(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_install_makes_every_module_import_this_package(tmp_path, monkeypatch):
    (tmp_path / "uses_caffe.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    fcn_caffe.install()
    try:
        helper = importlib.import_module("uses_caffe")
        assert helper.MODULES == [fcn_caffe, fcn_caffe.io, fcn_caffe.draw, netspec.caffe_pb2, fcn_caffe.net_spec,
                                  fcn_caffe.coord_map, fcn_caffe.pycaffe]
        assert helper.NAMES == [fcn_caffe.layers, fcn_caffe.params, fcn_caffe.NetSpec, fcn_caffe.to_proto,
                                netspec.caffe_pb2, fcn_caffe.coord_map.crop, fcn_caffe.coord_map.coord_map_from_to]
    finally:
        fcn_caffe.uninstall()
        sys.modules.pop("uses_caffe", None)
    assert "caffe" not in sys.modules and "caffe.io" not in sys.modules


SCRIPT = """import sys
import caffe
import helper                                     # a module beside the script, importing caffe itself
print("argv", sys.argv)
print("name", __name__)
print("same", helper.caffe is caffe, caffe.__name__)
"""


def test_python_m_fcn_caffe_runs_a_script_as_main(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "run.py").write_text(SCRIPT)
    (scripts / "helper.py").write_text("import caffe\n")
    result = run_python("-m", "fcn_caffe", "scripts/run.py", "7", "--flag", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["argv ['scripts/run.py', '7', '--flag']", "name __main__",
                                          "same True fcn_caffe"]


def test_python_m_fcn_caffe_runs_a_module(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    (tmp_path / "helper.py").write_text("import caffe\n")
    result = run_python("-m", "fcn_caffe", "-m", "job", "a", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("argv [") and lines[0].endswith("job.py', 'a']") and lines[1] == "name __main__"


PYCAFFE_STYLE_TEST = """import tempfile
import unittest

import caffe


class TimesTwo(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data


class TestTimesTwo(unittest.TestCase):
    def test_forward(self):
        with tempfile.NamedTemporaryFile(mode="w+", delete=False) as f:
            f.write("input: 'data' input_shape { dim: 2 dim: 3 } layer { type: 'Python' name: 'two' "
                    "bottom: 'data' top: 'two' python_param { module: 'test_times_two' layer: 'TimesTwo' } }")
        net = caffe.Net(f.name, caffe.TEST)
        net.blobs['data'].data[...] = 4
        self.assertTrue((net.forward()['two'] == 8).all())
"""


def test_python_m_fcn_caffe_runs_pycaffe_style_tests_under_pytest(tmp_path):
    """As pycaffe's own tests run: `import caffe` untouched, the layer module found on sys.path by its name."""
    (tmp_path / "test_times_two.py").write_text(PYCAFFE_STYLE_TEST)
    result = run_python("-m", "fcn_caffe", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_times_two.py",
                        cwd=tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_python_m_fcn_caffe_exit_status(tmp_path):
    (tmp_path / "fails.py").write_text("import caffe\nraise SystemExit(3)\n")
    assert run_python("-m", "fcn_caffe", "fails.py", cwd=tmp_path).returncode == 3
    missing = run_python("-m", "fcn_caffe", "nope.py", cwd=tmp_path)
    assert missing.returncode == 2 and "can't open file" in missing.stderr
    usage = run_python("-m", "fcn_caffe", cwd=tmp_path)
    assert usage.returncode == 2 and "python -m fcn_caffe SCRIPT" in usage.stderr


def test_the_runtime_does_not_import_the_pycaffe_package(tmp_path):
    code = "import sys, layers, solver, netspec, weights; print(any(m.startswith('fcn_caffe') for m in sys.modules))"
    result = run_python("-c", code, cwd=tmp_path)
    assert result.stdout.strip() == "False", result.stderr


def test_caffe_compat_still_serves_python_layers():
    from layers import caffe_compat
    assert caffe_compat.Layer is fcn_caffe.Layer and caffe_compat.TRAIN == fcn_caffe.TRAIN


@pytest.mark.parametrize("module", ["fcn_caffe.pycaffe", "fcn_caffe._caffe", "fcn_caffe.io"])
def test_submodules_import_on_their_own(module, tmp_path):
    result = run_python("-c", f"import {module}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_install_is_not_automatic(tmp_path):
    env = dict(os.environ, PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", "import fcn_caffe, sys; print('caffe' in sys.modules)"],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.strip() == "False", result.stderr

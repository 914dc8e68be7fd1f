"""Fixtures for the pycaffe tests: `caffe` is the package both ways a user gets it (`import fcn_caffe as caffe`,
and a plain `import caffe` after fcn_caffe.install()); the mode is the CPU again after every test."""
import importlib

import pytest

import fcn_caffe

WAYS_IN = {"fcn_caffe": "import fcn_caffe as caffe", "caffe": "import caffe"}


@pytest.fixture(params=list(WAYS_IN))
def caffe(request):
    """The package as a test module would import it; request.param names the way in."""
    if request.param == "fcn_caffe":
        yield fcn_caffe
    else:
        fcn_caffe.install()
        try:
            yield importlib.import_module("caffe")
        finally:
            fcn_caffe.uninstall()


@pytest.fixture(autouse=True)
def cpu_mode():
    yield
    fcn_caffe.set_mode_cpu()
    fcn_caffe.set_device(0)


@pytest.fixture
def import_line(caffe, request):
    """The line a module written for this test imports the package with, matching the way in under test."""
    return WAYS_IN[request.node.callspec.params["caffe"]]

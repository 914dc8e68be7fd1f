"""Shared fixtures: where the test vectors live (tests/vectors, or FCN_SHARED), and the device parameter that skips
the GPU without CUDA."""
import os
import pathlib

import pytest

from layers import backend

ROOT = pathlib.Path(__file__).resolve().parent.parent
# real Caffe's vectors, the fixtures and the reference nets, in the repository (tests/vectors/README.md);
# FCN_SHARED points the suite at another copy laid out the same way
SHARED = pathlib.Path(os.environ.get("FCN_SHARED", ROOT / "tests" / "vectors"))
GOLDEN = SHARED / "caffe-golden"
FIXTURES = SHARED / "fixtures"
REFERENCE = SHARED / "reference" / "fcn-prototxt"

needs_cuda = pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA device")
gpu = [pytest.mark.gpu, needs_cuda]         # the marks of a GPU test: skipped without CUDA, selected by -m gpu


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a CUDA device (skipped without CuPy and CUDA); -m gpu "
                                       "selects every such test")


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=gpu)])
def device(request):
    """Run a test body on the CPU, and on the GPU where one exists."""
    return request.param


def pytest_report_header(config):
    return f"test vectors: {SHARED} ({'found' if SHARED.exists() else 'MISSING'}); cuda: {backend.cuda_available()}"

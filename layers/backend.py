"""The array backend: the only module that imports CuPy.

Layers are written once against the array module `xp` of their bottoms (numpy on the CPU, CuPy on the GPU).
There is no global mode: a Net owns its device and moves its blobs; a layer looks at where its data lives.
"""
import functools
import os
import sys

import numpy

try:                                        # a CPU-only machine never needs CuPy, and never pays for importing it
    import cupy
except Exception:                           # ImportError, or a broken CUDA install
    cupy = None


@functools.lru_cache(maxsize=None)
def device_count():
    """How many CUDA devices CuPy sees (0 without CuPy, a driver or a device)."""
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:                       # CUDARuntimeError: CuPy installed but no driver/device
        return 0


def cuda_available():
    """True when CuPy imports and sees at least one CUDA device."""
    return device_count() > 0


def get_array_module(*arrays):
    """numpy or cupy, by where the arrays live (chainer's idiom)."""
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return numpy


def is_gpu(array):
    return cupy is not None and isinstance(array, cupy.ndarray)


def to_cpu(array):
    return cupy.asnumpy(array) if is_gpu(array) else array


def to_gpu(array, device_id=None):
    if cupy is None:
        raise RuntimeError("the GPU needs CuPy: pip install -e .[gpu]")
    if device_id is None:
        return cupy.asarray(array)
    with cupy.cuda.Device(device_id):
        return cupy.asarray(array)


def resolve_device(device):
    """Normalise a device request ('cpu', 'gpu', 'gpu:1', an int id, None) to ('cpu', None) or ('gpu', id).

    A GPU request on a machine without CUDA falls back to the CPU with one clear message.
    """
    if device is None or device == "cpu":
        return "cpu", None
    if isinstance(device, int):
        device_id = device
    elif isinstance(device, str) and device.startswith("gpu"):
        device_id = int(device.split(":")[1]) if ":" in device else 0
    else:
        raise ValueError(f"unknown device {device!r}: use 'cpu', 'gpu', 'gpu:N' or a GPU id")
    if not cuda_available():
        _warn_once("no usable CUDA device (CuPy missing or no GPU found): running on the CPU")
        return "cpu", None
    if not 0 <= device_id < device_count():
        raise ValueError(f"GPU {device_id} was asked for, but CuPy sees {device_count()} CUDA device(s) "
                         f"(ids 0..{device_count() - 1})")
    return "gpu", device_id


def use_device(device_id):
    """Make `device_id` CuPy's current device, so that temporaries go where the blobs are (caffe.set_device)."""
    if cupy is None:
        raise RuntimeError("the GPU needs CuPy: pip install -e .[gpu]")
    cupy.cuda.Device(device_id).use()


def synchronize():
    """Wait for the current GPU's queued work (for timing); nothing without CuPy or with the tests' stand-in."""
    if cupy is not None:
        sync = getattr(cupy.cuda.Device(), "synchronize", None)
        if sync is not None:
            sync()


def memory_bytes(xp=numpy):
    """The memory one array of module `xp` can at most take: the machine's RAM (or its cgroup's limit, if lower)
    for numpy, the current device's total memory for CuPy. Used to refuse impossible sizes before allocating."""
    if xp is not numpy and cupy is not None:
        try:
            return _gpu_bytes(cupy.cuda.Device().id)
        except Exception:                   # the stand-in CuPy of the tests, or no device: fall back to RAM
            pass
    return _ram_bytes()


@functools.lru_cache(maxsize=None)
def _gpu_bytes(device_id):
    return int(cupy.cuda.Device(device_id).mem_info[1])


@functools.lru_cache(maxsize=None)
def _ram_bytes():
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):          # not POSIX: no limit known
        ram = 1 << 62
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = f.read().strip()
        except OSError:
            continue
        if limit.isdigit():
            ram = min(ram, int(limit))
    return ram


@functools.lru_cache(maxsize=None)
def _warn_once(message):
    print(f"fcn-caffe: {message}", file=sys.stderr)


@functools.lru_cache(maxsize=None)
def elementwise(in_params, out_params, operation, name, **kwargs):
    """A memoised CuPy ElementwiseKernel (cf. chainer.backends.cuda.elementwise)."""
    return cupy.ElementwiseKernel(in_params, out_params, operation, name, **kwargs)


KERNELS = []                                # every ElementwiseKernel defined below, for the kernel tests


class ElementwiseKernel:
    """A CuPy ElementwiseKernel kept as its source until its first call, so that a module can define its kernels
    beside their numpy twins on a machine without CuPy. Called like CuPy's (arrays, scalars, outputs, size=...),
    it compiles through `elementwise` once per device and argument types. Its source is also what the tests run
    on the CPU (tests/cuda_sim.py), against the numpy twin, where no GPU exists."""

    def __init__(self, in_params, out_params, operation, name, **kwargs):
        self.in_params, self.out_params, self.operation, self.name = in_params, out_params, operation, name
        self.kwargs = kwargs
        KERNELS.append(self)

    def __call__(self, *args, **kwargs):
        return elementwise(self.in_params, self.out_params, self.operation, self.name,
                           **self.kwargs)(*args, **kwargs)

    def __repr__(self):
        return f"<ElementwiseKernel {self.name}>"


@functools.lru_cache(maxsize=None)
def raw_kernel(code, name):
    return cupy.RawKernel(code, name)

"""Random numbers: one home, seeded by one call (cf. Caffe::set_random_seed in caffe/common.cpp, util/rng.hpp).

seed(value) seeds every generator the engine draws from, as the solver's `random_seed` and pycaffe's
caffe.set_random_seed do:

- filler_rng(): the weight fillers' (layers/fillers.py); before any seed() it is seeded with 1701, so unseeded nets
  start from the same weights in every run;
- caffe_rng(): the generator the data layers share, Caffe's caffe_rng(). A data layer seeds its own CaffeRNG
  (boost's mt19937, below) with one caffe_rng_rand() from it, for ImageData and Data shuffles, rand_skip and the
  DataTransformer's crops and mirrors, exactly as Caffe; HDF5Data seeds its shuffling generator from it;
- uniform(xp, shape): Dropout's masks, from numpy's global generator on the CPU and CuPy's on the GPU (seed()
  seeds numpy's; seed_device() the GPU's, which CuPy keeps per device). Python layers that draw from
  numpy.random are seeded with them.

Caffe draws fillers, data seeds and CPU dropout from one generator. Here each has its own stream from the same
seed, so that a seed gives the numbers it gave before this module existed (the data layers' streams are checked
against boost's, and the README's results are for given seeds).
"""
import numpy

from layers import backend

_filler_rng = numpy.random.default_rng(1701)
_caffe_rng = numpy.random.default_rng()


def seed(value: int, device_id=None):
    """Caffe::set_random_seed: seed the fillers, the data layers and dropout; with a GPU id, that GPU's too."""
    global _filler_rng, _caffe_rng
    value = int(value)
    _filler_rng = numpy.random.default_rng(value)
    _caffe_rng = numpy.random.default_rng(value)
    numpy.random.seed(value % 2 ** 32)
    if device_id is not None:
        seed_device(value, device_id)


def seed_device(value: int, device_id: int):
    """Seed CuPy's generator on GPU `device_id` (where Dropout draws on that GPU); it becomes the current device."""
    backend.use_device(device_id)
    backend.cupy.random.seed(int(value))


def filler_rng() -> numpy.random.Generator:
    """The generator the weight fillers draw from."""
    return _filler_rng


def caffe_rng() -> numpy.random.Generator:
    """The generator the data layers share (Caffe's caffe_rng())."""
    return _caffe_rng


def caffe_rng_rand() -> int:
    """A 32-bit draw from the data layers' shared generator, as Caffe's caffe_rng_rand()."""
    return int(_caffe_rng.integers(2 ** 32))


def uniform(xp, shape):
    """Uniform [0, 1) draws of `shape` on the array module `xp` (Dropout's), from numpy's or CuPy's generator."""
    return xp.random.random_sample(shape)


class CaffeRNG:
    """Caffe::RNG: a boost::mt19937 seeded with a 32-bit value (numpy's RandomState is the same generator)."""

    def __init__(self, seed):
        self.mt = numpy.random.RandomState(seed)

    def __call__(self):
        return int(self.mt.randint(0, 2 ** 32, dtype=numpy.uint32))      # the raw 32-bit output

    def discard(self, count):
        """Advance by `count` outputs, as std::mt19937::discard."""
        for start in range(0, count, 1 << 20):
            self.mt.randint(0, 2 ** 32, size=min(1 << 20, count - start), dtype=numpy.uint32)

    def rand(self, n):
        """DataTransformer::Rand(n): a raw draw modulo n."""
        return self() % n

    def uniform_int(self, high):
        """boost::uniform_int<>(0, high)(mt19937): equal buckets of the 32-bit range, the last ones rejected."""
        bucket = 0xFFFFFFFF // (high + 1) + (0xFFFFFFFF % (high + 1) == high)
        while True:
            value = self() // bucket
            if value <= high:
                return value

    def shuffle(self, items):
        """caffe::shuffle, in place: Fisher-Yates from the end with boost::uniform_int."""
        for i in range(len(items) - 1, 0, -1):
            j = self.uniform_int(i)
            items[i], items[j] = items[j], items[i]

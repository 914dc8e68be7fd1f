"""The module-level pycaffe names: the whole list, layer_type_list (pycaffe's test_layer_type_list.py), the mode
and device (the CPU fallback's one message), set_random_seed, logging, Timer and the NCCL stand-ins."""
import logging

import numpy as np
import pytest

from layers import backend
from tests.fcn_caffe.test_pycaffe import write

PYCAFFE_NAMES = """Net SGDSolver NesterovSolver AdaGradSolver RMSPropSolver AdaDeltaSolver AdamSolver NCCL Timer
init_log log set_mode_cpu set_mode_gpu set_device Layer get_solver layer_type_list set_random_seed solver_count
set_solver_count solver_rank set_solver_rank set_multiprocess has_nccl __version__ TRAIN TEST Classifier Detector
io layers params NetSpec to_proto""".split()


def test_every_name_of_pycaffes_init(caffe):
    assert [name for name in PYCAFFE_NAMES if not hasattr(caffe, name)] == []
    assert (caffe.TRAIN, caffe.TEST) == (0, 1) and caffe.__version__ == "1.0.0"


def test_standard_layer_types(caffe):
    types = caffe.layer_type_list()
    for type_name in ["Data", "Convolution", "InnerProduct", "Deconvolution", "Crop", "Python"]:
        assert type_name in types
    assert types == sorted(types)


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without a usable CUDA device, and the fallback message not yet given."""
    monkeypatch.setattr(backend, "cuda_available", lambda: False)
    backend._warn_once.cache_clear()


def test_set_mode_gpu_without_cuda_falls_back_with_one_message(caffe, no_cuda, tmp_path, capsys):
    caffe.set_device(0)
    caffe.set_mode_gpu()
    net = caffe.Net(write(tmp_path / "net.prototxt", "layer { name: 'data' type: 'Input' top: 'data' "
                                                     "input_param { shape { dim: 1 } } }"), caffe.TEST)
    caffe.set_device(1)
    assert net.device == "cpu" and isinstance(net.blobs["data"].data, np.ndarray)
    err = capsys.readouterr().err
    assert err.count("no usable CUDA device") == 1 and "running on the CPU" in err


@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA device")
def test_set_mode_gpu_puts_nets_made_afterwards_on_the_gpu(caffe, tmp_path):
    path = write(tmp_path / "net.prototxt", "layer { name: 'data' type: 'Input' top: 'data' "
                                            "input_param { shape { dim: 1 } } }")
    caffe.set_mode_gpu()
    on_gpu = caffe.Net(path, caffe.TEST)
    caffe.set_mode_cpu()
    assert on_gpu.device == "gpu" and caffe.Net(path, caffe.TEST).device == "cpu"
    assert isinstance(on_gpu.blobs["data"].data, backend.cupy.ndarray)      # the live device array


RANDOM_NET = """name: 'random'
layer { name: 'data' type: 'DummyData' top: 'data'
  dummy_data_param { shape { dim: 4 dim: 3 } data_filler { type: 'gaussian' } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 5 weight_filler { type: 'xavier' } } }
layer { name: 'drop' type: 'Dropout' bottom: 'ip' top: 'drop' }
"""


def test_set_random_seed_repeats_fillers_and_dropout(caffe, tmp_path):
    path = write(tmp_path / "random.prototxt", RANDOM_NET)

    def draw(seed):
        caffe.set_random_seed(seed)
        net = caffe.Net(path, caffe.TRAIN)
        return net.params["ip"][0].data.copy(), net.forward()["drop"].copy()
    first, again, other = draw(5), draw(5), draw(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_set_random_seed_repeats_data_shuffling(caffe, tmp_path, monkeypatch):
    import h5py
    monkeypatch.chdir(tmp_path)
    with h5py.File(tmp_path / "rows.h5", "w") as f:
        f["data"] = np.arange(16, dtype=np.float32).reshape(16, 1)
    (tmp_path / "rows.txt").write_text("rows.h5\n")
    path = write(tmp_path / "shuffled.prototxt",
                 "layer { name: 'data' type: 'HDF5Data' top: 'data' "
                 "hdf5_data_param { source: 'rows.txt' batch_size: 16 shuffle: true } }")

    def order(seed):
        caffe.set_random_seed(seed)
        return caffe.Net(path, caffe.TRAIN).forward()["data"].ravel().tolist()
    assert order(3) == order(3) != order(4)
    assert sorted(order(3)) == list(range(16))


@pytest.fixture
def logging_enabled():
    """Logging not disabled process-wide (logging.disable, which the benchmarks call), then as it was."""
    previous = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    yield
    logging.disable(previous)


def test_log_and_init_log(caffe, capsys, logging_enabled):
    caffe.init_log()
    caffe.log("hello from pycaffe")
    assert "hello from pycaffe" in capsys.readouterr().err
    caffe.init_log(1)                                  # glog WARNING and above
    caffe.log("not shown")
    assert "not shown" not in capsys.readouterr().err
    caffe.init_log(0, False)                           # without logtostderr, only errors reach stderr
    assert logging.getLogger("fcn.solver").level == logging.ERROR
    caffe.init_log()


def test_timer(caffe):
    timer = caffe.Timer()
    assert timer.ms == 0
    timer.start()
    sum(range(10000))
    elapsed = timer.ms                                 # reading stops a running timer
    assert elapsed > 0 and timer.ms == elapsed


def test_multi_gpu_stand_ins(caffe):
    assert caffe.has_nccl() is False and caffe.solver_count() == 1 and caffe.solver_rank() == 0
    caffe.set_solver_count(2)
    caffe.set_solver_rank(1)
    caffe.set_multiprocess(True)
    assert (caffe.solver_count(), caffe.solver_rank()) == (2, 1)
    caffe.set_solver_count(1)
    caffe.set_solver_rank(0)
    caffe.set_multiprocess(False)

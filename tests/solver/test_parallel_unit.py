"""solver/parallel.py without MPI: the control step's agreement (mean loss, one action for all, a diverged rank),
and the warning for a data layer that cannot skip batches, with a stand-in communicator."""
import math

import numpy
import pytest

from solver import get_solver, parallel
from solver.solver import NONE, SNAPSHOT, STOP
from tests.solver.tiny import make_tiny


class Pair(parallel.Communicator):
    """Rank 0 of 2, with what rank 1 says given beforehand."""
    name = "stand-in"
    rank, size = 0, 2

    def __init__(self, other=(0.0, 0)):
        self.other = other

    def gather_all(self, vector, iteration):
        return numpy.array([vector, [iteration, *self.other]], dtype=numpy.float64)


@pytest.mark.parametrize("mine, other, action", [(NONE, 0, NONE), (NONE, parallel.SNAPSHOT_BIT, SNAPSHOT),
                                                 (SNAPSHOT, parallel.STOP_BIT, STOP), (STOP, 0, STOP)])
def test_agree_takes_every_ranks_request(tmp_path, mine, other, action):
    solver = get_solver(make_tiny(tmp_path))
    group = parallel.Parallel(solver, Pair((3.0, other)))
    assert group.agree(1.0, mine) == (2.0, action)


def test_a_diverged_rank_makes_the_mean_loss_nan(tmp_path):
    solver = get_solver(make_tiny(tmp_path))
    loss, _ = parallel.Parallel(solver, Pair((float("nan"), 0))).agree(1.0, NONE)
    assert math.isnan(loss)


NO_SKIP = '''from layers import caffe_compat as caffe


class Constant(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(4, 5)
        top[1].reshape(4)

    def forward(self, bottom, top):
        top[0].data[...] = 1
        top[1].data[...] = 0

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_a_data_layer_that_cannot_skip_is_named(tmp_path, capsys, monkeypatch):
    path = make_tiny(tmp_path, test_interval=None, test_iter=None)
    (tmp_path / "no_skip_data.py").write_text(NO_SKIP)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = (tmp_path / "net.prototxt").read_text()
    net = net.replace('type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }\n        '
                      'hdf5_data_param { source: "train.txt" batch_size: 4 }',
                      'type: "Python" top: "data" top: "label" include { phase: TRAIN }\n        '
                      'python_param { module: "no_skip_data" layer: "Constant" }')
    (tmp_path / "net.prototxt").write_text(net)
    parallel.Parallel(get_solver(path), Pair())
    assert ("layer(s) data cannot skip batches (no fast_forward), so every rank reads the same data from them"
            in capsys.readouterr().err)

"""Unmodified pycaffe-style client code, run with `python -m fcn_caffe` in a fresh process: a NetSpec net.py with
crop(), a Python data layer module, a solve.py that finetunes with net surgery and scores with helper modules of
its own (each importing caffe itself), and an infer.py, all in the shape of FCN's reference scripts."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fcn_caffe

NET_PY = '''import caffe
from caffe import layers as L, params as P
from caffe.coord_map import crop


def conv_relu(bottom, nout, ks=3, stride=1, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, stride=stride, num_output=nout, pad=pad,
                         param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                         weight_filler=dict(type='gaussian', std=0.1))
    return conv, L.ReLU(conv, in_place=True)


def fcn(split):
    n = caffe.NetSpec()
    if split == 'deploy':
        n.data = L.Input(shape=dict(dim=[1, 3, 16, 16]))
    else:
        n.data, n.label = L.Python(module='toy_layers', layer='ToySegDataLayer', ntop=2,
                                   param_str=str(dict(split=split, seed=1337)))
    n.conv1, n.relu1 = conv_relu(n.data, 8, pad=4)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score_fr = L.Convolution(n.pool1, num_output=2, kernel_size=1, pad=0,
                               param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(num_output=2, kernel_size=4, stride=2,
                                                                   bias_term=False), param=[dict(lr_mult=0)])
    n.score = crop(n.upscore, n.data)
    if split != 'deploy':
        n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=False, ignore_label=255))
    return n.to_proto()


for split, name in [('train', 'train.prototxt'), ('val', 'val.prototxt'), ('deploy', 'deploy.prototxt')]:
    with open(name, 'w') as f:
        f.write(str(fcn(split)))
'''

TOY_LAYERS = '''import caffe
import numpy as np


class ToySegDataLayer(caffe.Layer):
    """Images whose pixels are class 1 where the first channel is positive."""

    def setup(self, bottom, top):
        params = eval(self.param_str)
        self.rng = np.random.RandomState(params['seed'] + (params['split'] != 'train'))

    def reshape(self, bottom, top):
        self.image = self.rng.randn(1, 3, 16, 16).astype(np.float32)
        self.label = (self.image[:, :1] > 0).astype(np.float32)
        top[0].reshape(*self.image.shape)
        top[1].reshape(*self.label.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.image
        top[1].data[...] = self.label

    def backward(self, top, propagate_down, bottom):
        pass
'''

SURGERY = '''import caffe
import numpy as np


def upsample_filt(size):
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def interp(net, layers):
    for l in layers:
        m, k, h, w = net.params[l][0].data.shape
        net.params[l][0].data[range(m), range(k), :, :] = upsample_filt(h)


def transplant(new_net, net):
    for p in net.params:
        for i in range(len(net.params[p])):
            new_net.params[p][i].data.flat = net.params[p][i].data.flat
'''

SCORE = '''import os
from datetime import datetime

import caffe
import numpy as np
from PIL import Image


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


def compute_hist(net, save_dir, dataset, layer='score', gt='label'):
    n_cl = net.blobs[layer].channels
    if save_dir:
        os.mkdir(save_dir)
    hist = np.zeros((n_cl, n_cl))
    loss = 0
    for idx in dataset:
        net.forward()
        hist += fast_hist(net.blobs[gt].data[0, 0].flatten(), net.blobs[layer].data[0].argmax(0).flatten(), n_cl)
        if save_dir:
            im = Image.fromarray(net.blobs[layer].data[0].argmax(0).astype(np.uint8), mode='P')
            im.save(os.path.join(save_dir, idx + '.png'))
        loss += net.blobs['loss'].data.flat[0]
    return hist, loss / len(dataset)


def seg_tests(solver, save_format, dataset, layer='score', gt='label'):
    print('>>>', datetime.now(), 'Begin seg tests')
    solver.test_nets[0].share_with(solver.net)
    hist, loss = compute_hist(solver.test_nets[0], save_format.format(solver.iter) if save_format else False,
                              dataset, layer, gt)
    print('>>>', 'Iteration', solver.iter, 'loss', loss)
    print('>>>', 'Iteration', solver.iter, 'overall accuracy', np.diag(hist).sum() / hist.sum())
    return hist
'''

INIT = '''import caffe

caffe.Net('train.prototxt', caffe.TRAIN).save('init.caffemodel')
'''

SOLVE = '''import sys

import caffe
import numpy as np
import surgery, score

weights = 'init.caffemodel'

caffe.set_mode_cpu()
caffe.set_random_seed(int(sys.argv[1]))

solver = caffe.SGDSolver('solver.prototxt')
solver.net.copy_from(weights)

interp_layers = [k for k in solver.net.params.keys() if 'up' in k]
surgery.interp(solver.net, interp_layers)

val = np.loadtxt('val.txt', dtype=str)
for _ in range(2):
    solver.step(20)
    score.seg_tests(solver, 'segs_{}', val, layer='score')
'''

INFER = '''import caffe
import numpy as np
from PIL import Image

in_ = np.array(Image.open('image.png'), dtype=np.float32)
in_ = in_[:, :, ::-1]
in_ -= np.array((104.00698793, 116.66876762, 122.67891434))
in_ = in_.transpose((2, 0, 1)) / 50

net = caffe.Net('deploy.prototxt', 'snapshot/train_iter_40.caffemodel', caffe.TEST)
net.blobs['data'].reshape(1, *in_.shape)
net.blobs['data'].data[...] = in_
net.forward()
out = net.blobs['score'].data[0].argmax(axis=0)
Image.fromarray(out.astype(np.uint8)).save('out.png')
'''

SOLVER = '''train_net: "train.prototxt"
test_net: "val.prototxt"
test_iter: 4
test_interval: 999999999
display: 10
average_loss: 10
lr_policy: "fixed"
base_lr: 1e-3
momentum: 0.9
iter_size: 1
max_iter: 100
weight_decay: 0.0005
snapshot: 20
snapshot_prefix: "snapshot/train"
test_initialization: false
'''


def run(script, *args, cwd):
    return subprocess.run([sys.executable, "-m", "fcn_caffe", script, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The folder after net.py, init.py (the initial model), solve.py and infer.py, and the processes' results."""
    folder = tmp_path_factory.mktemp("fcn")
    for name, text in [("net.py", NET_PY), ("toy_layers.py", TOY_LAYERS), ("surgery.py", SURGERY),
                       ("score.py", SCORE), ("init.py", INIT), ("solve.py", SOLVE), ("infer.py", INFER),
                       ("solver.prototxt", SOLVER),
                       ("val.txt", "a\nb\nc\nd\n")]:
        (folder / name).write_text(text)
    (folder / "snapshot").mkdir()
    results = {"net": run("net.py", cwd=folder), "init": run("init.py", cwd=folder)}
    results["solve"] = run("solve.py", "3", cwd=folder)
    image = np.random.RandomState(0).randint(0, 256, size=(20, 24, 3)).astype(np.uint8)
    Image.fromarray(image).save(folder / "image.png")
    results["infer"] = run("infer.py", cwd=folder)
    return folder, results


def test_net_py_writes_the_prototxts(trained):
    folder, results = trained
    assert results["net"].returncode == 0, results["net"].stderr
    assert results["init"].returncode == 0, results["init"].stderr
    net = fcn_caffe.Net(str(folder / "deploy.prototxt"), fcn_caffe.TEST)
    assert net.outputs == ["score"] and net.forward()["score"].shape == (1, 2, 16, 16)
    assert 'crop_param {\n    axis: 2\n    offset: 4\n  }' in (folder / "train.prototxt").read_text()


def test_solve_py_trains_snapshots_and_scores(trained):
    folder, results = trained
    solve = results["solve"]
    assert solve.returncode == 0, solve.stderr
    assert (folder / "snapshot" / "train_iter_20.caffemodel").is_file()
    assert (folder / "snapshot" / "train_iter_40.solverstate").is_file()
    assert sorted(p.name for p in (folder / "segs_20").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
    accuracies = [float(line.split()[-1]) for line in solve.stdout.splitlines() if "overall accuracy" in line]
    assert len(accuracies) == 2 and accuracies[-1] > 0.6
    assert "Iteration 20, lr = 0.001" in solve.stderr                 # the solver's glog lines


def test_surgery_set_bilinear_upsampling(trained):
    folder, _ = trained
    net = fcn_caffe.Net(str(folder / "deploy.prototxt"), fcn_caffe.TEST,
                        weights=str(folder / "snapshot" / "train_iter_40.caffemodel"))
    up = net.params["upscore"][0].data
    np.testing.assert_allclose(up[0, 0], np.outer([.25, .75, .75, .25], [.25, .75, .75, .25]))
    assert (up[0, 1] == 0).all()                      # lr_mult 0: training left it as surgery set it


def test_infer_py_labels_an_image_of_any_size(trained):
    folder, results = trained
    assert results["infer"].returncode == 0, results["infer"].stderr
    out = np.array(Image.open(folder / "out.png"))
    assert out.shape == (20, 24) and set(np.unique(out)) <= {0, 1}

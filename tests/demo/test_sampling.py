"""python -m demo --sample P and python -m demo.sampling: the FCN train nets get the loss sampling layer and
batches 1/P larger while every other net stays the demo's, and the study trains, measures and plots."""
import dataclasses
import os

import numpy
import pytest
from PIL import Image

from demo import pipeline, sampling, synthetic
from demo.plot import COLOURS
from layers import Net
from netspec import io as netio

SMALL = dataclasses.replace(pipeline.CONFIGS["tiny"], n_train=12, n_val=8, val_batch=8, batch=2)


def read(folder, name):
    with open(os.path.join(folder, name)) as f:
        return f.read()


def test_sampled_nets_differ_from_the_demos_only_in_the_fcn_train_nets(tmp_path):
    plain = pipeline.write_nets(str(tmp_path / "plain"), "out", SMALL, seed=4)
    sampled = pipeline.write_nets(str(tmp_path / "sampled"), "out", SMALL, seed=4, sample=0.25)
    for name in plain:
        for file in ("val.prototxt", "solver.prototxt") + (("deploy.prototxt",) if name != "classifier" else ()):
            assert read(plain[name], file) == read(sampled[name], file), f"{name}/{file}"
    assert read(plain["classifier"], "train.prototxt") == read(sampled["classifier"], "train.prototxt")
    for stage in ("fcn32s-fixed", "fcn32s", "fcn16s", "fcn8s"):
        net = netio.read_net(os.path.join(sampled[stage], "train.prototxt"))
        layer = {lp.name: lp for lp in net.layer}
        sample = layer["label_sampled"]
        assert sample.type == "Python" and sample.python_param.module == "loss_sampling"
        assert eval(sample.python_param.param_str) == {"keep": 0.25, "cell": 32, "seed": 4}
        assert list(layer["loss"].bottom) == ["score", "label_sampled"]
        assert "'batch_size': 8" in layer["data"].python_param.param_str          # 2 / 0.25
    assert pipeline.sampled_batch(8, 0.3) == 27
    with pytest.raises(ValueError, match="--sample"):
        pipeline.sampled_batch(8, 0)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """SMALL's data and a stand-in for the convolutionalized classifier (FCN-32s's fillers)."""
    paths = pipeline.Paths(str(tmp_path_factory.mktemp("demo")))
    synthetic.write_voc(paths.data, 0, SMALL.n_train, SMALL.n_val, SMALL.size, max_objects=SMALL.max_objects,
                        radius=SMALL.radius)
    pipeline.write_nets(paths.nets, paths.out, SMALL, 0)
    os.makedirs(paths.models)
    Net(os.path.join(paths.net_dir("fcn32s"), "train.prototxt"), phase="TRAIN").save(paths.model("classifier-conv"))
    return paths


def test_study_trains_at_each_rate_and_plots_loss_against_iterations_images_and_time(demo_folder):
    paths, lines = demo_folder, []
    curves = {rate: sampling.train_at(rate, paths, SMALL, 0, None, iters=2, every=1, log=lines.append)
              for rate in (1, 0.5)}
    for rate, batch in ((1, 2), (0.5, 4)):
        curve = curves[rate]
        assert [p["iteration"] for p in curve] == [0, 1, 2]
        assert [p["images"] for p in curve] == [0, batch, 2 * batch]
        assert curve[0]["seconds"] == 0 < curve[1]["seconds"] < curve[2]["seconds"]
        assert all(numpy.isfinite(p["val_loss"]) for p in curve)
    assert curves[1][0]["val_loss"] == curves[0.5][0]["val_loss"]      # the same start, the same val images
    net = Net(os.path.join(paths.out, "sampling", "p0.5", "demo-fcn32s", "train.prototxt"), phase="TRAIN")
    assert net.layer_dict["label_sampled"].keep == 0.5
    table = sampling.write_results(paths, curves, [1, 0.5])
    assert "| 0.5 | 4 |" in table and "| 1 | 2 |" in table
    plot = Image.open(os.path.join(paths.out, "sampling.png"))
    assert plot.size == (3 * 360, 260)
    pixels = numpy.asarray(plot.convert("RGB")).reshape(-1, 3)
    for colour in COLOURS[:2]:
        assert (pixels == colour).all(axis=1).any()                       # both curves are drawn

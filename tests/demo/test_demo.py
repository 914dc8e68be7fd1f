"""The demo's pipeline end to end at the tiny size: each stage starts from its predecessor's trained weights, the
surgery is what FCN's is, and the nets that learn beat FCN-32s-fixed. Also: the committed nets are current."""
import io
import json
import os

import numpy
import pytest

from demo import nets, pipeline
from netspec import io as netio
from weights.surgery import upsample_filt

HERE = os.path.dirname(os.path.abspath(__file__))
COMMITTED = os.path.join(HERE, "..", "..", "prototxt", "demo")


def weights_of(path):
    return {layer.name: [netio.blob_to_array(b) for b in layer.blobs]
            for layer in netio.read_weights(path).layer if len(layer.blobs)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo"))
    inits = {}

    def on_init(stage, net, source, report):
        inits[stage] = (source, {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()})

    log = io.StringIO()
    results = pipeline.run(out, size="tiny", seed=0, log=pipeline.Log(stream=log), on_init=on_init)
    for stage in nets.STAGES:                                   # progress was shown for every stage
        assert f"{pipeline.STAGE_TITLES[stage]} iter " in log.getvalue()
    return out, results, inits


def test_each_stage_starts_from_its_predecessors_trained_weights(run):
    out, results, inits = run
    paths = pipeline.Paths(out)
    expected = {"32s-fixed": "classifier-conv", "32s": "classifier-conv", "16s": "fcn32s", "8s": "fcn16s"}
    assert list(inits) == list(nets.STAGES)
    for stage, (source, params) in inits.items():
        assert source == paths.model(expected[stage])
        loaded = weights_of(source)
        assert set(loaded) & set(params), f"{stage}: nothing of {source} is in the net"
        for name in set(loaded) & set(params):
            for got, want in zip(params[name], loaded[name]):
                assert numpy.array_equal(got, want.reshape(got.shape)), f"{stage}: {name} not copied from {source}"
        new = set(params) - set(loaded)
        for name in new:
            if name.startswith("up"):                        # bilinear upsampling on the channel diagonal
                weight = params[name][0]
                assert numpy.allclose(weight[0, 0], upsample_filt(weight.shape[-1]))
                assert not weight[0, 1].any()
            else:                                            # new score layers start at zero
                assert name.startswith("score") and not any(a.any() for a in params[name])
    assert set(inits["16s"][1]) - set(weights_of(paths.model("fcn32s"))) == {"score_pool4", "upscore2", "upscore16"}
    assert set(weights_of(paths.model("fcn32s"))) - set(inits["16s"][1]) == {"upscore"}       # replaced by the skip
    # the predecessor had trained: its saved weights are not what it started from
    for stage in ("32s", "16s"):
        trained = weights_of(paths.model(pipeline.fcn_name(stage)))
        assert not numpy.array_equal(trained["conv3_1"][0], inits[stage][1]["conv3_1"][0])


def test_convolutionalized_classifier_and_the_fixed_stage(run):
    out, results, _ = run
    paths = pipeline.Paths(out)
    config = pipeline.CONFIGS["tiny"]
    classifier = weights_of(os.path.join(paths.models, f"classifier_iter_{config.clf_iters}.caffemodel"))
    conv = weights_of(paths.model("classifier-conv"))
    assert "fc8" in classifier and "fc8" not in conv
    assert conv["fc6"][0].shape == (config.fc, config.widths[-1], 3, 3)
    assert numpy.array_equal(conv["fc6"][0].reshape(config.fc, -1), classifier["fc6"][0])
    assert numpy.array_equal(conv["fc7"][0].reshape(config.fc, config.fc), classifier["fc7"][0])
    # FCN-32s-fixed learns score_fr only: every other layer is still the classifier's
    fixed = weights_of(paths.model("fcn32s-fixed"))
    for name, arrays in conv.items():
        assert all(numpy.array_equal(a, b) for a, b in zip(fixed[name], arrays)), name
    assert fixed["score_fr"][0].any()


def test_the_papers_ordering_holds_with_margins(run):
    _, results, _ = run
    iu = {stage: 100 * r["mean_iu"] for stage, r in results["stages"].items()}
    # runs differ with the BLAS kernel and its threads, so margins, not exact values. Measured at seed 0 (mean IU,
    # %, OPENBLAS_CORETYPE=Haswell): one BLAS thread 11.2 / 14.2 / 19.9 / 26.9 (steps +3.0, +5.7, +7.0), two
    # 10.9 / 14.8 / 21.4 / 32.5 (+3.9, +6.6, +11.1); the default size separates the stages further
    assert iu["32s"] > iu["32s-fixed"] + 1, iu
    assert iu["16s"] > iu["32s"] + 2, iu
    assert iu["8s"] > iu["16s"] + 2, iu
    assert results["classifier_accuracy"] > 0.3                  # chance is 1/6


def test_results_and_figures_are_written(run):
    out, results, _ = run
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    assert list(saved["stages"]) == list(nets.STAGES)
    assert saved["stages"]["8s"]["mean_iu"] == pytest.approx(results["stages"]["8s"]["mean_iu"])
    with open(os.path.join(out, "results.md")) as f:
        text = f.read()
    for stage in nets.STAGES:
        row = next(line for line in text.splitlines() if line.startswith(f"| {pipeline.STAGE_TITLES[stage]} |"))
        assert f"{100 * results['stages'][stage]['mean_iu']:.1f}" in row
    from PIL import Image
    size = pipeline.CONFIGS["tiny"].size
    for name in ("fcn32s-fixed", "fcn32s", "fcn16s", "fcn8s", "all-stages"):
        with Image.open(os.path.join(out, "figures", f"{name}.png")) as im:
            columns = 6 if name == "all-stages" else 3
            assert im.width > columns * 2 * size and im.height > pipeline.CONFIGS["tiny"].figure_images * 2 * size


def test_learning_curves_are_recorded_and_drawn(run):
    out, results, _ = run
    with open(os.path.join(out, "results.json")) as f:
        curves = json.load(f)["curves"]
    config = pipeline.CONFIGS["tiny"]
    assert list(curves) == list(nets.STAGES)
    for stage, curve in curves.items():
        iters = config.stage_iters(stage)
        # the solver's loss after every iteration, and val mean IU at 0, 1/4, 2/4, 3/4 and the end
        assert curve["train_iteration"] == list(range(1, iters + 1)), stage
        assert len(curve["train_loss"]) == iters and all(0 < v < 10 for v in curve["train_loss"]), stage
        assert curve["val_iteration"] == [iters * k // config.curve_points for k in range(config.curve_points + 1)]
        assert len(curve["val_mean_iu"]) == config.curve_points + 1
        assert all(0 < v < 1 for v in curve["val_mean_iu"]), (stage, curve["val_mean_iu"])
        assert curve["val_mean_iu"][-1] == results["stages"][stage]["mean_iu"]     # the end is the table's score
        assert 0 < curve["val_scoring_seconds"] < 30
    # both start from the convolutionalized classifier with score_fr at zero: the same (background) predictions
    assert curves["32s"]["val_mean_iu"][0] == curves["32s-fixed"]["val_mean_iu"][0]
    from PIL import Image
    from demo.plot import COLOURS, HEIGHT, WIDTH
    path = os.path.join(out, "figures", "learning-curves.png")
    assert path in results["figures"]
    with Image.open(path) as im:
        assert im.size == (len(nets.STAGES) * WIDTH, 2 * HEIGHT)           # a column per stage, loss above IU
        pixels = numpy.asarray(im.convert("RGB"))
    for row, colour in ((pixels[:HEIGHT], COLOURS[0]), (pixels[HEIGHT:], COLOURS[1])):
        for k in range(len(nets.STAGES)):                                    # every panel has its line
            assert (row[:, k * WIDTH:(k + 1) * WIDTH] == colour).all(-1).sum() > 20, (k, colour)
    with open(os.path.join(out, "results.md")) as f:
        assert "figures/learning-curves.png" in f.read()


def test_committed_nets_are_current(tmp_path):
    written = pipeline.write_nets(str(tmp_path), "demo_out", pipeline.CONFIGS["default"], seed=0)
    for name, folder in written.items():
        files = sorted(os.listdir(folder))
        assert files == sorted(os.listdir(os.path.join(COMMITTED, os.path.basename(folder))))
        assert files == (["solver.prototxt", "train.prototxt", "val.prototxt"] if name == "classifier" else
                         ["deploy.prototxt", "solver.prototxt", "train.prototxt", "val.prototxt"])
        for file in files:
            committed = os.path.join(COMMITTED, os.path.basename(folder), file)
            with open(os.path.join(folder, file)) as new, open(committed) as old:
                assert new.read() == old.read(), f"{committed} is stale: python -m demo --write-nets prototxt/demo"


def test_the_nets_crop_offsets_come_from_the_graph():
    # the offsets the feasibility study derived for this body; computed here by netspec.coord_map, never written
    offsets = {stage: [l.crop_param.offset[0] for l in nets.fcn(stage, {}, (8, 16, 32, 64, 128), 256, 3, 7).layer
                       if l.type == "Crop"] for stage in nets.STAGES}
    assert offsets == {"32s-fixed": [16], "32s": [16], "16s": [1, 24], "8s": [1, 1, 28]}

"""Loss sampling (section 3.4): the kept fraction of cells is the rate asked for, whole cells are kept or ignored,
a seed repeats the draws and another changes them, TEST passes the label through, fast_forward skips exactly,
and a solver stopped and resumed with sampling ends where an uninterrupted run does."""
import numpy
import pytest

from layers import Net, rng
from solver import get_solver
from tests.solver.test_snapshot import assert_same_params, params_of, resume_with_voc_data

LABEL_SHAPE = (4, 1, 70, 45)


def net_text(keep, cell=8, seed=3, phase="TRAIN", extra=""):
    seed_key = f", 'seed': {seed}" if seed is not None else ""
    return (f'layer {{ name: "label" type: "Input" top: "label" input_param {{ shape {{ '
            f'{" ".join(f"dim: {d}" for d in LABEL_SHAPE)} }} }} }}\n'
            f'layer {{ name: "sample" type: "Python" bottom: "label" top: "sampled" python_param {{ '
            f'module: "loss_sampling" layer: "LossSamplingLayer" '
            f'param_str: "{{\'keep\': {keep}, \'cell\': {cell}{seed_key}{extra}}}" }} }}\n'), phase


def sampling_net(keep, **kw):
    text, phase = net_text(keep, **kw)
    return Net(text, phase=phase)


def labels(seed=0):
    return numpy.random.default_rng(seed).integers(0, 5, LABEL_SHAPE).astype(numpy.float32)


def sampled(net, label):
    return net.forward(label=label)["sampled"].copy()


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.25])
def test_kept_fraction_of_cells_is_the_rate(keep):
    net = sampling_net(keep, cell=1)                 # 4 x 70 x 45 = 12600 cells a forward
    label = labels()
    kept = numpy.mean([(sampled(net, label) != 255).mean() for _ in range(4)])
    n = 4 * label.size
    assert abs(kept - keep) < 4 * numpy.sqrt(keep * (1 - keep) / n) + 1e-9   # within 4 binomial deviations
    assert net.layer_dict["sample"].kept_fraction == pytest.approx(kept, abs=0.05)


def test_whole_cells_are_kept_or_ignored_and_kept_pixels_unchanged():
    net = sampling_net(0.5, cell=8)
    label = labels()
    out = sampled(net, label)
    kept = out != 255
    numpy.testing.assert_array_equal(out[kept], label[kept])
    for i0 in range(0, 70, 8):                       # the last row and column of cells are 6 and 5 pixels
        for j0 in range(0, 45, 8):
            block = kept[:, 0, i0:i0 + 8, j0:j0 + 8].reshape(4, -1)
            assert (block.all(axis=1) | ~block.any(axis=1)).all()
    per_image = kept.reshape(4, -1).mean(axis=1)
    assert len(set(per_image.round(6))) > 1         # each image draws its own cells


def test_a_seed_repeats_the_draws_and_another_changes_them():
    label = labels()
    first = [sampled(sampling_net(0.5, seed=3), label) for _ in range(2)]
    numpy.testing.assert_array_equal(first[0], first[1])
    assert not numpy.array_equal(first[0], sampled(sampling_net(0.5, seed=4), label))
    net = sampling_net(0.5, seed=3)
    assert not numpy.array_equal(sampled(net, label), sampled(net, label))   # each forward draws anew


def test_without_a_seed_the_solvers_random_seed_decides():
    """The seed is drawn from the data layers' generator, which random_seed (rng.seed) seeds."""
    label = labels()
    draws = []
    for value in (7, 7, 8):
        rng.seed(value)
        draws.append(sampled(sampling_net(0.5, seed=None), label))
    numpy.testing.assert_array_equal(draws[0], draws[1])
    assert not numpy.array_equal(draws[0], draws[2])


def test_test_phase_passes_the_label_through():
    net = sampling_net(0.25, phase="TEST")
    label = labels()
    numpy.testing.assert_array_equal(sampled(net, label), label)


@pytest.mark.parametrize("skip", [0, 1, 5])
def test_fast_forward_equals_that_many_forwards(skip):
    label = labels()
    straight = sampling_net(0.5)
    for _ in range(skip):
        sampled(straight, label)
    skipped = sampling_net(0.5)
    skipped.layer_dict["sample"].fast_forward(skip)  # through the Python layer, as the solver reaches it
    numpy.testing.assert_array_equal(sampled(skipped, label), sampled(straight, label))


@pytest.mark.parametrize("bad, message", [("0", "'keep'"), ("1.5", "'keep'")])
def test_bad_params_are_named(bad, message):
    with pytest.raises(ValueError, match=f"layer 'sample'.*{message}"):
        sampling_net(bad)
    with pytest.raises(ValueError, match="'cell'"):
        sampling_net(0.5, cell=0)
    with pytest.raises(ValueError, match="unknown key"):
        sampling_net(0.5, extra=", 'rate': 1")


def test_resume_with_sampling_equals_uninterrupted(tmp_path):
    """FCN's data layer in random order plus loss sampling: restoring fast-forwards both."""
    sample = ('layer { name: "sample" type: "Python" bottom: "label" top: "sampled" python_param { '
              'module: "loss_sampling" layer: "LossSamplingLayer" param_str: "{\'keep\': 0.5, \'cell\': 2}" } }\n')
    straight, resumed, state = resume_with_voc_data(tmp_path, between=sample, label="sampled")
    assert_same_params(params_of(resumed.net), params_of(straight.net), exact=True)
    # and the sampling's fast-forward mattered: without it the draws, and so the weights, differ
    lagging = get_solver(str(tmp_path / "solver.prototxt"))
    lagging.restore(state)
    lagging.net.layer_dict["sample"].impl.forwards = 0
    lagging.step(3)
    assert not numpy.array_equal(params_of(lagging.net)["score"][0], params_of(straight.net)["score"][0])

"""LSTMUnit, LSTM and RNN: numerical gradients (static input, restarts inside the batch), Caffe's param order and
shapes, the state carried from one forward to the next, expose_hidden, and the cont bottom that gets no gradient."""
import numpy
import pytest

from layers import Net
from tests.gradient_check import check_layer_gradient, make_layer, run_layer

rng = numpy.random.default_rng(4)
CONT = numpy.array([[0, 0], [1, 1], [1, 0]], dtype=numpy.float64)          # stream 1 restarts at t = 2


def recurrent(kind, bottoms, num_output=3, extra=""):
    names = " ".join(f'bottom: "{b}"' for b in bottoms)
    return make_layer(f'name: "r" type: "{kind}" {names} top: "y" recurrent_param {{ num_output: {num_output} '
                      f'weight_filler {{ type: "gaussian" std: 0.5 }} bias_filler {{ type: "gaussian" }} {extra} }}')


def test_lstm_unit_gradient_and_values():
    c_prev, gates = rng.normal(size=(1, 3, 4)), rng.normal(size=(1, 3, 16))
    cont = numpy.array([[1.0, 0.0, 1.0]])
    layer = make_layer('name: "u" type: "LSTMUnit" bottom: "c" bottom: "g" bottom: "cont" top: "c1" top: "h"')
    check_layer_gradient(layer, [c_prev, gates, cont], [True, True, False], top_count=2)
    _, (c, h) = run_layer(layer, c_prev, gates, cont, tops=2)
    s = 1 / (1 + numpy.exp(-gates.reshape(3, 4, 4)))
    i, f, o, g = s[:, 0], s[:, 1] * cont.reshape(3, 1), s[:, 2], numpy.tanh(gates.reshape(3, 4, 4)[:, 3])
    numpy.testing.assert_allclose(c.data.reshape(3, 4), f * c_prev.reshape(3, 4) + i * g)
    numpy.testing.assert_allclose(h.data.reshape(3, 4), o * numpy.tanh(c.data.reshape(3, 4)))
    assert not layer.allow_force_backward(2)


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
@pytest.mark.parametrize("static", [False, True])
def test_gradient(kind, static):
    x = rng.normal(size=(3, 2, 2, 2))                               # T, N and 4 values per step
    bottoms = [x, CONT] + ([rng.normal(size=(2, 3))] if static else [])
    layer = recurrent(kind, ["x", "cont", "xs"][:len(bottoms)])
    check_layer_gradient(layer, bottoms, [True, False] + [True] * static)


def test_param_order_and_shapes():
    lstm = recurrent("LSTM", ["x", "cont", "xs"], num_output=5)
    run_layer(lstm, rng.normal(size=(3, 2, 4)), CONT, rng.normal(size=(2, 6)))
    assert [b.shape for b in lstm.blobs] == [(20, 4), (20,), (20, 6), (20, 5)]       # W_xc, b_c, W_xc_static, W_hc
    rnn = recurrent("RNN", ["x", "cont"], num_output=5)
    _, top = run_layer(rnn, rng.normal(size=(3, 2, 4)), CONT)
    assert [b.shape for b in rnn.blobs] == [(5, 4), (5,), (5, 5), (5, 5), (5,)]      # W_xh, b_h, W_hh, W_ho, b_o
    assert top[0].shape == (3, 2, 5)


def copy_params(source, target):
    for a, b in zip(source.blobs, target.blobs):
        b.data[...] = a.data


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_state_carries_over_to_the_next_forward(kind):
    x = rng.normal(size=(6, 2, 3))
    cont = numpy.ones((6, 2))
    cont[0] = 0
    whole = recurrent(kind, ["x", "cont"])
    _, top = run_layer(whole, x, cont)
    chunked = recurrent(kind, ["x", "cont"])
    bottoms, part = run_layer(chunked, x[:3], cont[:3])
    copy_params(whole, chunked)
    chunked.run_forward(bottoms, part)                 # the same first chunk again, now with whole's params
    first = part[0].data.copy()
    bottoms[0].data[...], bottoms[1].data[...] = x[3:], cont[3:]
    chunked.run_forward(bottoms, part)                 # cont 1 at its first step: goes on from the last forward
    numpy.testing.assert_allclose(numpy.concatenate([first, part[0].data]), top[0].data, rtol=1e-12)


@pytest.mark.parametrize("kind, states", [("LSTM", ["h0", "c0"]), ("RNN", ["h0"])])
def test_expose_hidden(kind, states):
    x = rng.normal(size=(4, 2, 3))
    cont = numpy.array([[0, 0], [1, 1], [1, 1], [1, 1.0]])
    whole = recurrent(kind, ["x", "cont"])
    _, top = run_layer(whole, x, cont)
    layer = recurrent(kind, ["x", "cont"] + states, extra="expose_hidden: true")
    zeros = [numpy.zeros((1, 2, 3))] * len(states)
    bottoms, tops = run_layer(layer, x[:2], cont[:2], *zeros, tops=1 + len(states))
    copy_params(whole, layer)
    layer.run_forward(bottoms, tops)
    if kind == "LSTM":                                  # h_T is the last output (an RNN's output is o_t)
        numpy.testing.assert_allclose(tops[1].data[0], tops[0].data[-1])
    first = tops[0].data.copy()
    for state, final in zip(bottoms[2:], tops[1:]):                                 # the final states fed back
        state.data[...] = final.data
    bottoms[0].data[...], bottoms[1].data[...] = x[2:], cont[2:]
    layer.run_forward(bottoms, tops)
    numpy.testing.assert_allclose(numpy.concatenate([first, tops[0].data]), top[0].data, rtol=1e-12)
    for t in tops:                                     # as Caffe: no gradient through the exposed states
        t.diff[...] = 1
    layer.run_backward(tops, [True, False] + [True] * len(states), bottoms)
    assert not any(b.diff.any() for b in bottoms[2:])
    assert len(layer.blobs) == (3 if kind == "LSTM" else 5)


def test_cont_gets_no_gradient_even_forced():
    net = Net("""force_backward: true
        layer { name: "in" type: "Input" top: "x" top: "cont"
                input_param { shape { dim: 3 dim: 2 dim: 2 } shape { dim: 3 dim: 2 } } }
        layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
                recurrent_param { num_output: 2 weight_filler { type: "gaussian" } } }""")
    net.forward(x=rng.normal(size=(3, 2, 2)), cont=CONT)
    net.backward(h=numpy.ones((3, 2, 2)))
    assert net.blobs["x"].diff.any() and not net.blobs["cont"].diff.any()
    layer = net.layer_dict["lstm"]
    with pytest.raises(ValueError, match="LSTM layer 'lstm': cannot backpropagate to the sequence indicators"):
        layer.run_backward([net.blobs["h"]], [True, True], [net.blobs["x"], net.blobs["cont"]])


def test_errors():
    x = rng.normal(size=(3, 2, 2))
    with pytest.raises(ValueError, match="cont must be"):
        run_layer(recurrent("LSTM", ["x", "cont"]), x, numpy.ones((3, 3)))
    with pytest.raises(ValueError, match="num_output must be set"):
        run_layer(recurrent("RNN", ["x", "cont"], num_output=0), x, CONT)
    with pytest.raises(ValueError, match="takes at least 4 bottom"):
        run_layer(recurrent("LSTM", ["x", "cont"], extra="expose_hidden: true"), x, CONT)
    layer = recurrent("RNN", ["x", "cont"])
    bottoms, top = run_layer(layer, x, CONT)
    bottoms[0].reshape(4, 2, 2)
    bottoms[1].reshape(4, 2)
    with pytest.raises(ValueError, match="number of timesteps changed"):
        layer.run_forward(bottoms, top)

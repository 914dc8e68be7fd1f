"""LSTMUnit layer ("LSTMUnit"): one LSTM step, the unit Caffe's LSTM layer unrolls. Bottoms c_prev (1, N, H),
gate inputs (1, N, 4H) in the order i, f, o, g, and cont (1, N); tops c and h (1, N, H):
    i, f, o = sigmoid(i', f', o'),  g = tanh(g'),  f <- cont * f (0 where cont == 0)
    c = f * c_prev + i * g,  h = o * tanh(c)
Semantics: caffe lstm_unit_layer.cpp, including its forget-gate gradient c_term * c_prev * f * (1 - f), which
reads the cont-scaled f (the exact derivative where cont is 0 or 1, as sequence markers are). c_prev and the
gates get gradients, cont none."""
from layers import backend
from layers.base import Layer
from layers.registry import register
from layers.sigmoid import sigmoid


def lstm_unit_forward(c_prev, gates, cont):
    """c_prev (N, H), gates (N, 4H), cont (N,) -> c, h (N, H) and the activations the backward reads."""
    xp = backend.get_array_module(gates)
    hidden = c_prev.shape[-1]
    act = sigmoid(xp, gates)
    act[:, 3 * hidden:] = xp.tanh(gates[:, 3 * hidden:])
    i, f, o, g = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
    f *= cont.reshape(-1, 1).astype(act.dtype)
    c = f * c_prev + i * g
    tanh_c = xp.tanh(c)
    return c, o * tanh_c, (act, tanh_c, c_prev)


def lstm_unit_backward(dc, dh, cache):
    """The gradients (dc_prev (N, H), dgates (N, 4H)) from those of c and h (dc may be None: zero)."""
    xp = backend.get_array_module(dh)
    act, tanh_c, c_prev = cache
    hidden = c_prev.shape[-1]
    i, f, o, g = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c_term = dh * o * (1 - tanh_c * tanh_c)
    if dc is not None:
        c_term += dc
    dgates = xp.concatenate([c_term * g * i * (1 - i), c_term * c_prev * f * (1 - f),
                             dh * tanh_c * o * (1 - o), c_term * i * (1 - g * g)], axis=1)
    return c_term * f, dgates


@register("LSTMUnit")
class LSTMUnitLayer(Layer):
    exact_num_bottom = 3
    exact_num_top = 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2          # the sequence markers

    def reshape(self, bottom, top):
        n = bottom[0].shape[1] if bottom[0].ndim > 1 else -1
        for i, b in enumerate(bottom):
            if b.ndim != (2 if i == 2 else 3) or b.shape[0] != 1 or b.shape[1] != n:
                raise self.error(f"bottoms must be c_prev (1, N, H), gates (1, N, 4H) and cont (1, N); bottom {i} "
                                 f"has shape {b.shape}")
        self.hidden = bottom[0].shape[2]
        if bottom[1].shape[2] != 4 * self.hidden:
            raise self.error(f"the gate input must have 4 x {self.hidden} values per item, got {bottom[1].shape}")
        for t in top:
            t.reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        n = bottom[0].shape[1]
        c, h, self.cache = lstm_unit_forward(bottom[0].data.reshape(n, -1), bottom[1].data.reshape(n, -1),
                                             bottom[2].data.reshape(n))
        top[0].data[...] = c.reshape(top[0].shape)
        top[1].data[...] = h.reshape(top[1].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise self.error("cannot backpropagate to the sequence indicators (cont); set propagate_down: false")
        if not (propagate_down[0] or propagate_down[1]):
            return
        n = bottom[0].shape[1]
        dc_prev, dgates = lstm_unit_backward(top[0].diff.reshape(n, -1), top[1].diff.reshape(n, -1), self.cache)
        bottom[0].diff[...] = dc_prev.reshape(bottom[0].shape)
        bottom[1].diff[...] = dgates.reshape(bottom[1].shape)

"""LSTM layer ("LSTM"): Caffe's long short-term memory over time-major sequences (layers/recurrent.py has the
bottoms, tops and Caffe's recurrent semantics). Per step t, with gate input
    gate_t = W_hc (cont_t h_{t-1}) + (W_xc x_t + b_c) [+ W_xc_static x_static]
the LSTMUnit (layers/lstm_unit.py) gives c_t and h_t; the top is h (T, N, num_output). Params W_xc (4H, K),
b_c (4H,), [W_xc_static (4H, S),] W_hc (4H, H), gates in the order i, f, o, g. Semantics: caffe lstm_layer.cpp;
expose_hidden adds bottoms h_0, c_0 and tops h_T, c_T."""
from layers.lstm_unit import lstm_unit_backward, lstm_unit_forward
from layers.recurrent import RecurrentLayer
from layers.registry import register


@register("LSTM")
class LSTMLayer(RecurrentLayer):
    num_states = 2                        # h, c (Caffe's recurrent input order)
    gates = 4

    def recurrent_param_shapes(self):
        return [((4 * self.hidden, self.hidden), False)]                     # W_hc

    def forward_steps(self, inputs, static, cont, initial):
        xp = self.xp(self.blobs[0])
        w_hc = self.blobs[-1].data
        h, c = initial
        self.conted, self.caches = [], []
        out = xp.empty(inputs.shape[:2] + (self.hidden,), dtype=inputs.dtype)
        for t in range(self.steps):
            conted = h * cont[t].reshape(-1, 1)                               # h_conted_{t-1}
            gate = conted @ w_hc.T + inputs[t]
            if static is not None:
                gate += static
            c, h, cache = lstm_unit_forward(c, gate, cont[t])
            self.conted.append(conted)
            self.caches.append(cache)
            out[t] = h
        self.final_states = [h, c]
        return out

    def backward_steps(self, dh_top, cont):
        xp = self.xp(self.blobs[0])
        w_hc = self.blobs[-1]
        d_gates = xp.empty(dh_top.shape[:2] + (4 * self.hidden,), dtype=dh_top.dtype)
        dh_next, dc_next = 0, None                        # nothing comes back from beyond the last step
        for t in reversed(range(self.steps)):
            dc_next, d_gates[t] = lstm_unit_backward(dc_next, dh_top[t] + dh_next, self.caches[t])
            w_hc.diff += d_gates[t].T @ self.conted[t]
            dh_next = (d_gates[t] @ w_hc.data) * cont[t].reshape(-1, 1)
        return d_gates

"""RNN layer ("RNN"): Caffe's simple recurrent net over time-major sequences (layers/recurrent.py has the
bottoms, tops and Caffe's recurrent semantics). Per step t:
    h_t = tanh(W_hh (cont_t h_{t-1}) + (W_xh x_t + b_h) [+ W_xh_static x_static]),  o_t = tanh(W_ho h_t + b_o)
and the top is o (T, N, num_output). Params W_xh (H, K), b_h (H,), [W_xh_static (H, S),] W_hh (H, H),
W_ho (H, H), b_o (H,). Semantics: caffe rnn_layer.cpp; expose_hidden adds bottom h_0 and top h_T."""
from layers.recurrent import RecurrentLayer
from layers.registry import register


@register("RNN")
class RNNLayer(RecurrentLayer):
    num_states = 1

    def recurrent_param_shapes(self):
        h = self.hidden
        return [((h, h), False), ((h, h), False), ((h,), True)]               # W_hh, W_ho, b_o

    def forward_steps(self, inputs, static, cont, initial):
        xp = self.xp(self.blobs[0])
        w_hh, w_ho, b_o = (b.data for b in self.blobs[-3:])
        h, = initial
        self.conted = []
        self.h = xp.empty(inputs.shape[:2] + (self.hidden,), dtype=inputs.dtype)
        for t in range(self.steps):
            conted = h * cont[t].reshape(-1, 1)                               # h_conted_{t-1}
            pre = conted @ w_hh.T + inputs[t]
            if static is not None:
                pre += static
            h = self.h[t] = xp.tanh(pre)
            self.conted.append(conted)
        self.final_states = [h.copy()]
        self.o = xp.tanh(self.h @ w_ho.T + b_o)                               # W_ho_h_t, o_neuron_t: all steps
        return self.o

    def backward_steps(self, do, cont):
        xp = self.xp(self.blobs[0])
        w_hh, w_ho, b_o = self.blobs[-3:]
        d_pre_o = (do * (1 - self.o * self.o)).reshape(-1, self.hidden)
        w_ho.diff += d_pre_o.T @ self.h.reshape(-1, self.hidden)
        b_o.diff += d_pre_o.sum(axis=0)
        dh_out = (d_pre_o @ w_ho.data).reshape(self.h.shape)
        d_pre = xp.empty_like(self.h)
        dh_next = 0
        for t in reversed(range(self.steps)):
            d_pre[t] = (dh_out[t] + dh_next) * (1 - self.h[t] * self.h[t])
            w_hh.diff += d_pre[t].T @ self.conted[t]
            dh_next = (d_pre[t] @ w_hh.data) * cont[t].reshape(-1, 1)
        return d_pre

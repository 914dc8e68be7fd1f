"""What the RNN and LSTM layers share: Caffe's RecurrentLayer (recurrent_layer.cpp).

Bottoms: x (T, N, ...) time-major, cont (T, N) sequence markers (cont_t = 0 starts a new sequence: the state
from step t - 1 is multiplied by 0), an optional static input x_static (N, ...) added to every step's input
through its own weight, and with recurrent_param.expose_hidden the initial states (each (1, N, num_output));
tops: the output (T, N, num_output), then with expose_hidden the final states. Caffe runs an unrolled inner net
(x_transform, then per step cont scaling, an InnerProduct of the state, an Eltwise sum and the step's unit, then
Concat); the subclasses compute the same step by step, forward in time and backward in reverse. As there:
- the input transforms of all T steps are one InnerProduct (axis 2), the static one (axis 1) is added at each step;
- without expose_hidden the final states become the next forward's initial states (zeros at first, and again
  when N changes), so a long sequence can be fed in chunks of T steps;
- exposed initial states get no gradient and the exposed final states pass none back (the inner net shares only
  their data), and nothing is propagated across forwards;
- backward always computes the gradients of x, x_static and every param (the inner net ignores propagate_down),
  never that of cont, which force_backward cannot force.
"""
import numpy

from layers import fillers
from layers.base import Layer


class RecurrentLayer(Layer):
    num_states = None                     # LSTM: h and c; RNN: h
    gates = 1                             # the input transform's width in units of num_output (LSTM: 4)

    def __init__(self, param, phase="TEST"):
        super().__init__(param, phase)
        exposed = self.num_states if param.recurrent_param.expose_hidden else 0
        self.min_num_bottom, self.max_num_bottom = 2 + exposed, 3 + exposed
        self.exact_num_top = 1 + exposed

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1          # the sequence markers

    def setup(self, bottom, top):
        p = self.param.recurrent_param
        if bottom[0].ndim < 2:
            raise self.error(f"bottom 0 must have at least 2 axes (timesteps, streams, ...), got {bottom[0].shape}")
        self.steps = bottom[0].shape[0]
        self.expose_hidden = p.expose_hidden
        self.static = len(bottom) > 2 + (self.num_states if self.expose_hidden else 0)
        if p.num_output <= 0:
            raise self.error("recurrent_param.num_output must be set and positive")
        self.hidden = p.num_output
        self.k = int(numpy.prod(bottom[0].shape[2:]))
        self.k_static = int(numpy.prod(bottom[2].shape[1:])) if self.static else None
        if not self.blobs:                # params may already exist (copied or shared)
            dtype = bottom[0].dtype
            for shape, is_bias in self.param_shapes():
                filler = p.bias_filler if is_bias else p.weight_filler
                self.add_param_blob(shape, dtype, fillers.fill(filler, shape, dtype))
        self.states = None

    def param_shapes(self):
        """(shape, is_bias) of each param, in Caffe's order: the input transform's weight and bias, the static
        input's weight, then the subclass's recurrent params."""
        width = self.gates * self.hidden
        shapes = [((width, self.k), False), ((width,), True)]
        if self.static:
            shapes.append(((width, self.k_static), False))
        return shapes + self.recurrent_param_shapes()

    def reshape(self, bottom, top):
        x, cont = bottom[0], bottom[1]
        if x.ndim < 2 or x.shape[0] != self.steps:
            raise self.error(f"the input number of timesteps changed: bottom 0 has shape {x.shape}, the layer "
                             f"was set up for {self.steps}")
        n = x.shape[1]
        if cont.shape != (self.steps, n):
            raise self.error(f"cont must be (timesteps, streams) = ({self.steps}, {n}), got {cont.shape}")
        if int(numpy.prod(x.shape[2:])) != self.k:
            raise self.error(f"the input size changed: bottom 0 has shape {x.shape}, the weights expect {self.k} "
                             f"values per step and stream")
        if self.static and (bottom[2].shape[0] != n or int(numpy.prod(bottom[2].shape[1:])) != self.k_static):
            raise self.error(f"x_static must be ({n}, ...) with {self.k_static} values per stream, got "
                             f"{bottom[2].shape}")
        state_shape = (1, n, self.hidden)
        for i, b in enumerate(bottom[2 + self.static:]):
            if b.shape != state_shape:
                raise self.error(f"bottom {2 + self.static + i} (an initial state) must have shape {state_shape}, "
                                 f"got {b.shape}")
        top[0].reshape(self.steps, n, self.hidden)
        for t in top[1:]:
            t.reshape(*state_shape)
        if self.states is None or self.states[0].shape != (n, self.hidden) or type(self.states[0]) is not \
                type(x.data):
            self.states = [x.xp.zeros((n, self.hidden), dtype=x.dtype) for _ in range(self.num_states)]

    def forward(self, bottom, top):
        n = bottom[0].shape[1]
        x = bottom[0].data.reshape(self.steps, n, self.k)
        weight, bias = self.blobs[0].data, self.blobs[1].data
        inputs = x @ weight.T + bias                                        # x_transform: all steps at once
        static = bottom[2].data.reshape(n, self.k_static) @ self.blobs[2].data.T if self.static else None
        if self.expose_hidden:
            initial = [b.data.reshape(n, self.hidden) for b in bottom[2 + self.static:]]
        else:
            initial = self.states                                           # the last forward's final states
        cont = bottom[1].data
        top[0].data[...] = self.forward_steps(inputs, static, cont, initial)
        self.states = self.final_states
        for t, state in zip(top[1:], self.final_states):
            t.data[...] = state.reshape(t.shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise self.error("cannot backpropagate to the sequence indicators (cont); set propagate_down: false")
        n = bottom[0].shape[1]
        d_inputs = self.backward_steps(top[0].diff, bottom[1].data)          # (T, N, gates * H)
        x = bottom[0].data.reshape(self.steps * n, self.k)
        flat = d_inputs.reshape(self.steps * n, -1)
        self.blobs[0].diff += flat.T @ x
        self.blobs[1].diff += flat.sum(axis=0)
        bottom[0].diff[...] = (flat @ self.blobs[0].data).reshape(bottom[0].shape)
        if self.static:
            d_static = d_inputs.sum(axis=0)                                  # the static sum feeds every step
            self.blobs[2].diff += d_static.T @ bottom[2].data.reshape(n, self.k_static)
            bottom[2].diff[...] = (d_static @ self.blobs[2].data).reshape(bottom[2].shape)

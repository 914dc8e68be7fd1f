"""The Net: a DAG of layers built from a NetParameter (cf. caffe/net.cpp and pycaffe's Net).

Building follows Caffe's Net::Init: filter by phase/stages/level, insert Split layers where a blob fans out,
create each layer in definition order, connect bottoms and tops (in place when a top repeats a bottom), share
params named by ParamSpec, and work out which layers and blobs need a gradient.
"""
import collections
import contextlib
import time
from typing import Dict, Optional, Sequence

import numpy

from layers import backend
from layers.blob import Blob, MemoryLimitError, format_bytes
from layers.registry import create_layer
from netspec import caffe_pb2, io as netio, paths
from netspec.errors import NetDefinitionError
from netspec.rules import filter_net
from netspec.splits import insert_splits

PHASES = {"TRAIN": "TRAIN", "TEST": "TEST", caffe_pb2.TRAIN: "TRAIN", caffe_pb2.TEST: "TEST"}


class LayerTimes:
    """Seconds each layer spent in forward and in backward (lists indexed as net.layers), summed over the passes
    run inside Net.timing(); the GPU is synchronised around each layer, so a layer is charged its own kernels."""

    def __init__(self, count, sync):
        self.forward, self.backward = [0.0] * count, [0.0] * count
        self.sync = sync

    def start(self):
        self.sync()
        return time.perf_counter()

    def stop(self, phase, layer_id, started):
        self.sync()
        getattr(self, phase)[layer_id] += time.perf_counter() - started


def _phase_name(phase):
    try:
        return PHASES[phase.upper() if isinstance(phase, str) else phase]
    except KeyError:
        raise ValueError(f"phase must be 'TRAIN' or 'TEST', got {phase!r}") from None


class Net:
    """A Caffe net.

    Net(net, phase='TEST', weights=None, stages=(), level=0, device=None)
      net: a prototxt path, prototxt text or a NetParameter
      weights: a .caffemodel / .caffemodel.h5 path (or a list of them) copied in by layer name
      device: None/'cpu', 'gpu', 'gpu:N' or a GPU id
      base_dir: a folder that layers reading files (data sources) try before the working directory; by default
        the prototxt's folder (the solver passes its own folder)
      input_shapes: {input blob: shape} replacing the shapes the Input layers declare, so that a net about to be
        reshaped (to an image) is never allocated at its declared size first
    """

    def __init__(self, net, phase="TEST", weights=None, stages: Sequence[str] = (), level: int = 0, device=None,
                 dtype=numpy.float32, base_dir: Optional[str] = None, input_shapes=None):
        self.phase = _phase_name(phase)
        self.source = paths.source_path(net)       # the prototxt file, or None for text or a message
        # relative paths inside the net (data sources) are tried against this folder first, then the cwd
        self.base_dir = base_dir if base_dir is not None else paths.folder_of(self.source)
        param = netio.read_net(net)
        if not param.layer:
            what = f"net {param.name!r}" if param.name else "the net"
            raise NetDefinitionError(f"{self.source}: no layers (the file is empty or holds only comments)"
                                     if self.source else f"{what} has no layers (its definition is empty or holds "
                                     f"only comments)")
        state = caffe_pb2.NetState(phase=getattr(caffe_pb2, self.phase), level=level, stage=list(stages))
        if param.HasField("state"):      # the net's own state (Caffe merges it with the phase we ask for)
            state.level = level or param.state.level
            state.stage.extend(s for s in param.state.stage if s not in state.stage)
        self.net_param = param
        filtered = filter_net(param, state.phase, list(state.stage), state.level)
        if not filtered.layer:
            raise NetDefinitionError(f"{self.source or 'net'} '{param.name}': no layers in phase {self.phase} "
                                     f"(every layer of the {len(param.layer)} is excluded by its include/exclude "
                                     f"rules in this phase)")
        if input_shapes:
            _set_input_shapes(filtered, input_shapes)
        self.name = param.name
        self.dtype = numpy.dtype(dtype)
        expanded = insert_splits(filtered)
        for lp in expanded.layer:            # Caffe's Net::Init: every layer, each Split too, inherits the phase
            if not lp.HasField("phase"):
                lp.phase = state.phase
        self._build(expanded)
        if weights:
            for path in [weights] if isinstance(weights, str) else weights:
                self.copy_from(path)
        self.device = "cpu"
        self.device_id = None
        # TEST-phase inference only: forward() frees each blob no later layer reads (inputs and the blobs it
        # returns are kept), so that memory holds a few activations rather than all of them; later tops reuse
        # the freed arrays (as Caffe reuses memory, layers write every top element), sparing fresh pages
        self.release_blobs = False
        self._released = False
        self._spare, self._shapes = [], {}
        self._timer = None                   # a LayerTimes while inside timing()
        self._hooks = {event: [] for event in ("before_forward", "after_forward", "before_backward",
                                               "after_backward")}
        if device is not None:
            self.to_device(device)

    # ------------------------------------------------------------------ building
    def _build(self, param):
        self.layers = []
        self.blobs = collections.OrderedDict()
        self._layer_bottoms, self._layer_tops = [], []
        self.bottom_need_backward, self.layer_need_backward = [], []
        self.inputs = []
        self._params = []                    # every param blob slot: (layer_id, param_id)
        self._param_owner = {}               # ParamSpec name -> (layer_id, param_id)
        self.learnable_params = []           # unique Blobs, in Caffe's learnable_params order
        self.params_lr, self.params_weight_decay = [], []
        self._loss_tops = []                 # (blob name, weight)
        blob_need_backward = {}
        force_backward = param.force_backward
        held, counted, memory = 0, set(), backend.memory_bytes()     # bytes of the arrays made so far

        for layer_id, lp in enumerate(param.layer):
            # a layer's own `phase` field wins; otherwise it runs in the net's phase (Caffe's set_phase)
            layer = create_layer(lp, _phase_name(lp.phase) if lp.HasField("phase") else self.phase)
            layer.base_dir = self.base_dir                       # what a layer needs from its net, given
            layer.source_dir = paths.folder_of(self.source)      # at build time (layers/base.py)
            if lp.propagate_down and len(lp.propagate_down) != len(lp.bottom):
                raise ValueError(f"layer '{lp.name}': propagate_down has {len(lp.propagate_down)} values "
                                 f"for {len(lp.bottom)} bottom blob(s)")
            bottoms, need_backward, bottom_need = [], False, []
            for i, name in enumerate(lp.bottom):
                if name not in self.blobs:
                    raise ValueError(f"layer '{lp.name}' ({lp.type}): unknown bottom blob '{name}' "
                                     f"(bottom index {i}); no earlier layer produces it")
                bottoms.append(self.blobs[name])
                need = blob_need_backward[name] and (not lp.propagate_down or lp.propagate_down[i])
                bottom_need.append(need)
                need_backward |= need
            tops = []
            for i, name in enumerate(lp.top):
                if name in lp.bottom:
                    tops.append(self.blobs[name])           # in place: the top is the bottom blob
                else:
                    if name in self.blobs:
                        raise ValueError(f"layer '{lp.name}' ({lp.type}): top blob '{name}' is produced by "
                                         f"more than one layer")
                    blob = Blob(dtype=self.dtype)
                    self.blobs[name] = blob
                    tops.append(blob)
                    if lp.type == "Input":
                        self.inputs.append(name)
            needed = max(layer.exact_num_top or 0, layer.min_num_top or 0)
            top_names = list(lp.top)
            if layer.auto_top_blobs:
                while len(tops) < needed:
                    name = "(automatic)" if "(automatic)" not in self.blobs else f"(automatic {len(self.blobs)})"
                    blob = Blob(dtype=self.dtype)
                    self.blobs[name] = blob
                    tops.append(blob)
                    top_names.append(name)
            try:
                layer.run_setup(bottoms, tops)
            except (ValueError, TypeError, NotImplementedError, MemoryError) as e:
                raise _named(e, lp) from e
            except (ZeroDivisionError, OverflowError) as e:      # a degenerate parameter no check caught
                raise ValueError(f"{lp.type} layer '{lp.name}': its parameters give {type(e).__name__} "
                                 f"({e}); check them for zeros and impossible sizes") from e
            held += sum(_new_bytes(b, counted) for b in tops + layer.blobs)
            if held > memory:
                raise MemoryLimitError(
                    f"{lp.type} layer '{lp.name}': the net's blobs and params take {format_bytes(held)} up to this "
                    f"layer (its tops: {', '.join(str(b.shape) for b in tops)}), more than this machine's memory "
                    f"({format_bytes(memory)}); use smaller inputs, batches or layers")
            for name, weight in zip(top_names, layer.loss_weights):
                if weight:
                    self._loss_tops.append((name, weight))
            # params: sharing by name, learning-rate multipliers, whether gradients are computed
            specs = list(lp.param)
            if len(specs) > len(layer.blobs):
                raise ValueError(f"layer '{lp.name}' ({lp.type}) has {len(layer.blobs)} learnable blob(s) but "
                                 f"{len(specs)} param specs")
            layer.param_propagate_down = []
            for param_id in range(len(layer.blobs)):
                spec = specs[param_id] if param_id < len(specs) else caffe_pb2.ParamSpec()
                learns = spec.lr_mult != 0
                layer.param_propagate_down.append(learns)
                need_backward |= learns
                self._append_param(layer_id, layer, param_id, spec)
            self.layers.append(layer)
            self._layer_bottoms.append(list(lp.bottom))
            self._layer_tops.append(top_names)
            self.bottom_need_backward.append(bottom_need)
            self.layer_need_backward.append(need_backward)
            for name in top_names:
                blob_need_backward[name] = need_backward

        self._prune_backward(force_backward)
        for layer, need, bottom_need in zip(self.layers, self.layer_need_backward, self.bottom_need_backward):
            layer.need_backward, layer.bottom_need_backward = need, list(bottom_need)
        # Caffe's available_blobs: a layer consumes its bottoms, then (re)produces its tops, so the blob of an
        # in-place layer (ReLU, Dropout) is still a net output
        available = set()
        for bottoms, tops in zip(self._layer_bottoms, self._layer_tops):
            available.difference_update(bottoms)
            available.update(tops)
        self.outputs = [n for n in self.blobs if n in available]
        self.layer_dict = collections.OrderedDict((l.name, l) for l in self.layers)
        self.params = collections.OrderedDict((l.name, l.blobs) for l in self.layers if l.blobs)

    def _append_param(self, layer_id, layer, param_id, spec):
        name = spec.name
        if not name or name not in self._param_owner:
            if name:
                self._param_owner[name] = (layer_id, param_id)
            self.learnable_params.append(layer.blobs[param_id])
            self.params_lr.append(spec.lr_mult)
            self.params_weight_decay.append(spec.decay_mult)
            return
        owner_layer, owner_id = self._param_owner[name]
        owner = self.layers[owner_layer].blobs[owner_id]
        mine = layer.blobs[param_id]
        strict = spec.share_mode == caffe_pb2.ParamSpec.STRICT
        if (strict and owner.shape != mine.shape) or owner.count != mine.count:
            raise ValueError(f"layer '{layer.name}': shared param '{name}' has shape {mine.shape}, but its owner "
                             f"'{self.layers[owner_layer].name}' has shape {owner.shape}")
        if owner.shape != mine.shape:
            raise ValueError(f"layer '{layer.name}': PERMISSIVE sharing of '{name}' between shapes "
                             f"{owner.shape} and {mine.shape} is not supported; make the shapes equal")
        layer.blobs[param_id] = owner         # one Blob: the data and the diff are shared, as ShareWeights does
        k = next(i for i, b in enumerate(self.learnable_params) if b is owner)
        owner_spec = self.layers[owner_layer].param.param[owner_id]
        if spec.HasField("lr_mult"):
            if owner_spec.HasField("lr_mult") and owner_spec.lr_mult != spec.lr_mult:
                raise ValueError(f"layer '{layer.name}': shared param '{name}' has lr_mult {spec.lr_mult} but "
                                 f"its owner has {owner_spec.lr_mult}")
            self.params_lr[k] = spec.lr_mult
        if spec.HasField("decay_mult"):
            if owner_spec.HasField("decay_mult") and owner_spec.decay_mult != spec.decay_mult:
                raise ValueError(f"layer '{layer.name}': shared param '{name}' has decay_mult {spec.decay_mult} "
                                 f"but its owner has {owner_spec.decay_mult}")
            self.params_weight_decay[k] = spec.decay_mult

    def _prune_backward(self, force_backward):
        """Caffe's second pass: only layers that feed a loss compute gradients; then force_backward."""
        under_loss, skip = set(), set()
        for layer_id in reversed(range(len(self.layers))):
            layer = self.layers[layer_id]
            contributes, skip_down = False, True
            for name, weight in zip(self._layer_tops[layer_id], layer.loss_weights):
                contributes |= bool(weight) or name in under_loss
                skip_down &= name in skip
            if self.layer_need_backward[layer_id] and skip_down:
                self.layer_need_backward[layer_id] = False
                self.bottom_need_backward[layer_id] = [False] * len(self._layer_bottoms[layer_id])
            if not contributes:
                self.layer_need_backward[layer_id] = False
            for i, name in enumerate(self._layer_bottoms[layer_id]):
                if contributes:
                    under_loss.add(name)
                else:
                    self.bottom_need_backward[layer_id][i] = False
                if not self.bottom_need_backward[layer_id][i]:
                    skip.add(name)
        if force_backward:
            for layer_id, layer in enumerate(self.layers):
                self.layer_need_backward[layer_id] = True
                self.bottom_need_backward[layer_id] = [
                    need or layer.allow_force_backward(i)
                    for i, need in enumerate(self.bottom_need_backward[layer_id])]
                layer.param_propagate_down = [True] * len(layer.blobs)

    # ------------------------------------------------------------------ pycaffe's views by index
    # per layer id, the names of its top / bottom blobs (the pycaffe package's Net keys them by layer name)
    top_names = property(lambda self: self._layer_tops)
    bottom_names = property(lambda self: self._layer_bottoms)

    @property
    def _layer_names(self):
        return [layer.name for layer in self.layers]

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def _blobs(self):
        return list(self.blobs.values())

    @property
    def _inputs(self):
        names = self._blob_names
        return [names.index(name) for name in self.inputs]

    @property
    def _outputs(self):
        names = self._blob_names
        return [names.index(name) for name in self.outputs]

    def _top_ids(self, layer_id):
        names = self._blob_names
        return [names.index(name) for name in self._layer_tops[layer_id]]

    def _bottom_ids(self, layer_id):
        names = self._blob_names
        return [names.index(name) for name in self._layer_bottoms[layer_id]]

    @property
    def blob_loss_weights(self):
        """{blob name: loss weight}, 0 for blobs that are no loss; as Caffe, the last layer writing a blob sets it."""
        weights = collections.OrderedDict((name, 0.0) for name in self.blobs)
        for layer, tops in zip(self.layers, self._layer_tops):
            for name, weight in zip(tops, layer.loss_weights):
                weights[name] = weight
        return weights

    @property
    def _blob_loss_weights(self):
        return list(self.blob_loss_weights.values())

    # ------------------------------------------------------------------ running
    def _blobs_of(self, names):
        return [self.blobs[n] for n in names]

    def _layer_index(self, name, default):
        if name is None:
            return default
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise ValueError(f"no layer named '{name}' in net '{self.name}'") from None

    def set_input(self, name: str, array) -> None:
        """Put an array into an input blob, reshaping it (and so the net) to the array's shape."""
        if name not in self.blobs:
            raise ValueError(f"net '{self.name}' has no blob '{name}' (inputs: {', '.join(self.inputs) or 'none'})")
        blob = self.blobs[name]
        xp = blob.xp
        array = xp.asarray(array, dtype=blob.dtype)
        blob.reshape(*array.shape)
        blob.data[...] = array

    def forward(self, blobs=None, start=None, end=None, **inputs) -> Dict[str, object]:
        """Run layers start..end (by name; default all) and return {output name: data array}.

        Keyword arguments fill input blobs (reshaping the net to them). `blobs` lists extra blobs to return;
        with `end`, the tops of that layer are returned instead of the net's outputs (as pycaffe).
        """
        for name, array in inputs.items():
            self.set_input(name, array)
        first = self._layer_index(start, 0)
        last = self._layer_index(end, len(self.layers) - 1)
        names = list(self.outputs) if end is None else list(self._layer_tops[last])
        names += [b for b in (blobs or []) if b not in names]
        self._forward(first, last, keep=names)
        return collections.OrderedDict((n, self.blobs[n].data) for n in names)

    def _forward(self, first, last, keep=()):
        """Run layers first..last by index (Caffe's ForwardFromTo, pycaffe's net._forward); returns the loss.

        With release_blobs in the TEST phase, blobs no later layer reads are freed, except inputs and `keep`.
        """
        release = self._release_plan(first, last, keep) if self.release_blobs and self.phase == "TEST" else {}
        self._released = bool(release)
        transient = {name for freed in release.values() for name in freed}
        if not release:
            self._spare = []
        loss = 0.0
        timer = self._timer
        for layer_id in range(first, last + 1):
            for hook in self._hooks["before_forward"]:
                hook(layer_id)
            lent = self._lend(layer_id, transient) if release else {}
            started = timer and timer.start()
            try:
                loss += self.layers[layer_id].run_forward(self._blobs_of(self._layer_bottoms[layer_id]),
                                                          self._blobs_of(self._layer_tops[layer_id]))
            except MemoryError as e:                 # a size refused by Blob, numpy's or CuPy's out of memory
                raise _named(e, self.layers[layer_id].param) from e
            if timer:
                timer.stop("forward", layer_id, started)
            for name, (view, owner) in lent.items():
                if self.blobs[name].data is not view:  # the layer chose other memory (a new shape, shared data)
                    if self.blobs[name].shape == view.shape:    # a new shape drops it: inputs that change
                        self._spare.append(owner)               # shape every pass must not grow the pool

            for name in release.get(layer_id, ()):
                self._release(name)
            for hook in self._hooks["after_forward"]:
                hook(layer_id)
        self.loss = loss
        return loss

    def _lend(self, layer_id, transient):
        """Give the layer's transient tops a spare array each (the smallest that fits): {name: (view, owner)}."""
        lent = {}
        for name in self._layer_tops[layer_id]:
            blob = self.blobs[name]
            shape = blob.shape if blob.count else self._shapes.get(name)
            if name not in transient or name in self._layer_bottoms[layer_id] or not shape:
                continue
            size = int(numpy.prod(shape))
            fits = [a for a in self._spare if a.size >= size and type(a) is type(blob.data)]   # same device
            if fits:
                owner = min(fits, key=lambda a: a.size)
                self._spare = [a for a in self._spare if a is not owner]
                view = owner.reshape(-1)[:size].reshape(shape)
                blob.reshape(*shape)
                blob.data = view
                lent[name] = (view, owner)
        return lent

    def _release(self, name):
        """Free a blob; its array becomes spare once no other blob (a Split top, a view) still uses it."""
        blob = self.blobs[name]
        data = blob.data
        self._shapes[name] = blob.shape
        blob.reshape(0)                                  # drops data and diff
        owner = data if data.base is None else data.base
        if all(b.data is not data and b.data is not owner and b.data.base is not owner
               for b in self.blobs.values()):
            self._spare.append(owner)

    def _release_plan(self, first, last, keep):
        """{layer id: blobs made in first..last whose last reader it is}, sparing inputs and `keep`."""
        made, plan = set(), {}
        for layer_id in range(first, last + 1):
            for name in self._layer_bottoms[layer_id]:
                plan[name] = layer_id
            made.update(self._layer_tops[layer_id])
        spare = set(keep) | set(self.inputs)
        by_layer = collections.defaultdict(list)
        for name, layer_id in plan.items():
            if name in made and name not in spare:
                by_layer[layer_id].append(name)
        return by_layer

    def backward(self, diffs=None, start=None, end=None, **top_diffs) -> Dict[str, object]:
        """Back-propagate from end..start (default all) and return {input name: diff array}.

        Loss tops start from their loss_weight; keyword arguments set the diffs of output blobs. `diffs` lists
        extra blobs whose diffs to return; with `end`, the bottoms of that layer are returned instead of the
        net's inputs (as pycaffe). Param diffs accumulate until clear_param_diffs(), as in Caffe.
        """
        if self._released:
            raise ValueError(f"net '{self.name}': the last forward ran with release_blobs and freed the blobs "
                             f"backward needs; set release_blobs = False and run forward again")
        for name, weight in self._loss_tops:
            self.blobs[name].diff[...] = weight
        for name, array in top_diffs.items():
            blob = self.blobs[name]
            blob.diff[...] = blob.xp.asarray(array, dtype=blob.dtype)
        first = self._layer_index(start, len(self.layers) - 1)
        last = self._layer_index(end, 0)
        self._backward(first, last)
        names = list(self.inputs) if end is None else list(self._layer_bottoms[last])
        names += [d for d in (diffs or []) if d not in names]
        return collections.OrderedDict((n, self.blobs[n].diff) for n in names)

    def _backward(self, first, last):
        """Back-propagate layers first down to last by index (Caffe's BackwardFromTo, pycaffe's net._backward)."""
        timer = self._timer
        for layer_id in range(first, last - 1, -1):
            for hook in self._hooks["before_backward"]:
                hook(layer_id)
            if self.layer_need_backward[layer_id]:
                started = timer and timer.start()
                self.layers[layer_id].run_backward(self._blobs_of(self._layer_tops[layer_id]),
                                                   self.bottom_need_backward[layer_id],
                                                   self._blobs_of(self._layer_bottoms[layer_id]))
                if timer:
                    timer.stop("backward", layer_id, started)
            for hook in self._hooks["after_backward"]:
                hook(layer_id)

    @contextlib.contextmanager
    def timing(self):
        """Time every layer's forward and backward while inside: `with net.timing() as times: ...`, then
        times.forward[i] / times.backward[i] are the seconds layer i took (`python -m solver time`, the benchmark
        profiles). On the GPU each layer's kernels are waited for, which costs a little of the overlap."""
        sync = backend.synchronize if getattr(self, "device", None) == "gpu" else (lambda: None)
        times = LayerTimes(len(self.layers), sync)
        outer, self._timer = self._timer, times
        try:
            yield times
        finally:
            self._timer = outer

    # Caffe's Net callbacks, run with the layer index around each layer's forward or backward
    def before_forward(self, fn):
        self._hooks["before_forward"].append(fn)

    def after_forward(self, fn):
        self._hooks["after_forward"].append(fn)

    def before_backward(self, fn):
        self._hooks["before_backward"].append(fn)

    def after_backward(self, fn):
        self._hooks["after_backward"].append(fn)

    def forward_backward(self, **inputs) -> float:
        self.forward(**inputs)
        self.backward()
        return self.loss

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            blob.diff[...] = 0

    def reshape(self):
        for layer, bottoms, tops in zip(self.layers, self._layer_bottoms, self._layer_tops):
            layer.reshape(self._blobs_of(bottoms), self._blobs_of(tops))

    # ------------------------------------------------------------------ weights
    def copy_from(self, path: str) -> None:
        """Copy params from a .caffemodel or .caffemodel.h5 by layer name (Caffe's CopyTrainedLayersFrom).

        Source layers this net lacks are ignored; this net's layers the source lacks keep their init.
        """
        source = netio.read_weights(path)
        self.copy_from_proto(source, origin=path)

    def copy_from_proto(self, source, origin="the weights"):
        for src in source.layer:
            layer = self.layer_dict.get(src.name)
            if layer is None or not src.blobs:
                continue
            if len(src.blobs) != len(layer.blobs):
                raise ValueError(f"{origin}: incompatible number of blobs for layer '{src.name}': the file has "
                                 f"{len(src.blobs)}, the net's {layer.type} layer has {len(layer.blobs)}")
            for i, (proto, blob) in enumerate(zip(src.blobs, layer.blobs)):
                try:
                    array = netio.blob_to_array(proto)
                except ValueError as e:          # values that do not fill the stored shape: a damaged file
                    raise ValueError(f"{origin}: param {i} of layer '{src.name}': {e}; the file is damaged") from None
                if array.shape != blob.shape:
                    if not netio.legacy_shape_equals(proto, blob.shape):
                        raise ValueError(
                            f"{origin}: cannot copy param {i} of layer '{src.name}': its shape in the file is "
                            f"{tuple(array.shape)}, the net's is {blob.shape}. To learn this layer's parameters "
                            f"from scratch rather than copying them from a saved net, rename the layer.")
                    array = array.reshape(blob.shape)
                blob.data[...] = blob.xp.asarray(array, dtype=blob.dtype)

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as a NetParameter holding every layer (Split layers included) with its blobs."""
        out = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            lp = out.layer.add()
            lp.CopyFrom(layer.param)
            del lp.blobs[:]
            for blob in layer.blobs:
                proto = netio.array_to_blob(backend.to_cpu(blob.data))
                if write_diff:
                    proto.diff.extend(backend.to_cpu(blob.diff).ravel().tolist())
                lp.blobs.add().CopyFrom(proto)
        return out

    def save(self, path: str) -> None:
        """Write the weights as a binary .caffemodel, or Caffe's HDF5 layout when path ends in .h5."""
        proto = self.to_proto()
        if str(path).endswith(".h5"):
            netio.write_caffemodel_h5(proto, path)
        else:
            netio.write_caffemodel(proto, path)

    def save_hdf5(self, path):
        netio.write_caffemodel_h5(self.to_proto(), path)

    def load_hdf5(self, path):
        """Copy params by layer name from Caffe's HDF5 layout, whatever the file is called."""
        self.copy_from_proto(netio.read_caffemodel_h5(path), origin=path)

    def share_with(self, other: "Net") -> None:
        """Caffe's ShareTrainedLayersWith: this net's layers use the param arrays of other's same-named layers."""
        by_name = {layer.name: layer for layer in other.layers}
        for layer in self.layers:
            source = by_name.get(layer.name)
            if source is None:
                continue
            if len(source.blobs) != len(layer.blobs):
                raise ValueError(f"cannot share weights of layer '{layer.name}': {len(source.blobs)} blob(s) in "
                                 f"'{other.name}', {len(layer.blobs)} in '{self.name}'")
            for j, (mine, theirs) in enumerate(zip(layer.blobs, source.blobs)):
                if mine.shape != theirs.shape:
                    raise ValueError(f"cannot share param {j} of layer '{layer.name}': shape {theirs.shape} in "
                                     f"'{other.name}', {mine.shape} in '{self.name}'")
                mine.share_data(theirs)

    # ------------------------------------------------------------------ device
    def to_device(self, device) -> "Net":
        kind, device_id = backend.resolve_device(device)
        return self.to_gpu(device_id) if kind == "gpu" else self.to_cpu()

    def _all_blobs(self):
        seen = {}
        for blob in list(self.blobs.values()) + [b for l in self.layers for b in l.blobs]:
            seen[id(blob)] = blob
        for layer in self.layers:
            for blob in getattr(layer, "internal_blobs", ()):
                seen[id(blob)] = blob
        return seen.values()

    def to_gpu(self, device_id=0):
        backend.use_device(device_id)          # temporaries go where the blobs are (caffe.set_device)
        for blob in self._all_blobs():
            blob.to_gpu(device_id)
        for layer in self.layers:
            if hasattr(layer, "on_device_change"):
                layer.on_device_change()
        self.device, self.device_id = "gpu", device_id
        return self

    def to_cpu(self):
        for blob in self._all_blobs():
            blob.to_cpu()
        for layer in self.layers:
            if hasattr(layer, "on_device_change"):
                layer.on_device_change()
        self.device, self.device_id = "cpu", None
        return self

    def __repr__(self):
        return f"<Net '{self.name}' ({self.phase}): {len(self.layers)} layers, {len(self.blobs)} blobs>"


def _named(error, lp):
    """`error` with the layer's type and name in front (unless it names the layer already); a MemoryError becomes
    a MemoryLimitError, which the command lines report as bad input."""
    msg = str(error)
    if f"'{lp.name}'" not in msg:
        msg = f"{lp.type} layer '{lp.name}': {msg}"
    if isinstance(error, MemoryError) and not isinstance(error, MemoryLimitError):
        return MemoryLimitError(f"{msg} (out of memory)")
    try:
        return type(error)(msg)
    except Exception:                      # a type not made from one message (UnicodeDecodeError, ...)
        return ValueError(msg)


def _new_bytes(blob, counted):
    """The bytes of blob's data array unless an earlier blob holds the same array (in place, Split, shared)."""
    data = blob.data
    key = id(data if data.base is None else data.base)
    if key in counted:
        return 0
    counted.add(key)
    return int(data.nbytes)


def _set_input_shapes(param, shapes):
    """In place: the Input layers of `param` declare `shapes` ({top name: shape}) for the tops named there."""
    for lp in param.layer:
        if lp.type != "Input" or not any(top in shapes for top in lp.top):
            continue
        declared = [caffe_pb2.BlobShape(dim=list(shape.dim)) for shape in lp.input_param.shape]
        if len(declared) == 1 and len(lp.top) > 1:          # one shape for every top: give each its own
            declared = declared * len(lp.top)
        del lp.input_param.shape[:]
        for k, top in enumerate(lp.top):
            shape = lp.input_param.shape.add()
            if top in shapes:
                shape.dim.extend(int(d) for d in shapes[top])
            elif k < len(declared):
                shape.CopyFrom(declared[k])

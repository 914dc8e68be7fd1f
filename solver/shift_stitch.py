"""Shift-and-stitch (FCN paper, section 3.2): the dense output of a net whose output has stride f.

shift_and_stitch(net, blob, x) is the paper's recipe. For every shift (dy, dx), 0 <= dy < fh and 0 <= dx < fw, the
input shifted by (dy, dx) (its first dy rows and dx columns dropped) runs through the whole net, and the outputs
are interlaced: dense[..., dy + fh*i, dx + fw*j] = output_{dy,dx}[..., i, j]. That is fh*fw forward passes;
dense[..., ::fh, ::fw] is the net's own output, and dense position n sits at input pixel n + b
(netspec.rarefy.input_map gives b).

shift_and_stitch_layerwise(net, blob, x) stitches where the paper says it is done efficiently, "by processing
subsampled versions of the upsampled input": each strided layer runs at stride 1, and the layers after it run on
each of its s*s subsampled outputs (every s-th row and column from (dy, dx)), recursively, so that the work is
what the rarefied net's is. It follows one chain of layers (each with one bottom) from the input to `blob`.

The two agree wherever no border is in view. They differ near the borders: a shifted input moves the borders of
every map before the last strided layer, so zero padding there (FCN's pad 100 on conv1_1, the pad 1 of VGG's 3x3
convolutions) meets other pixels than in a single pass, and ceil-rounded pooling adds a clipped window at the end of
some shifts' maps. The layerwise stitch equals the rarefied net (netspec/rarefy.py) at every position.
"""
import collections
import time

import numpy

from layers import backend
from layers.blob import Blob
from layers.registry import create_layer
from netspec import caffe_pb2
from netspec.errors import NetDefinitionError
from netspec.rarefy import STRIDED_TYPES, chain, destrided, geometry, input_map, is_strided
from solver.infer import input_blob, preprocess


def net_param(net):
    """The layers a built Net runs (Split layers included), as a NetParameter."""
    param = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        param.layer.add().CopyFrom(layer.param)
    return param


def _input_blob(net, ids):
    first = net.layers[ids[0]]
    if net.bottom_names[ids[0]] or len(net.top_names[ids[0]]) != 1:
        raise NetDefinitionError(f"net '{net.name}': the way to the output starts at layer '{first.name}' "
                                 f"({first.type}), not at an input; feed the net through an Input layer")
    return net.top_names[ids[0]][0]


def _as_input(net, name, x):
    blob = net.blobs[name]
    return blob.xp.asarray(x, dtype=blob.dtype)


def shift_and_stitch(net, blob, x):
    """The dense `blob` for input x (N x C x H x W, fed to the net's input), by f*f shifted inputs through `net`.
    The net is left reshaped to the last shifted input."""
    param = net_param(net)
    ids = chain(param, blob)
    name = _input_blob(net, ids)
    (fh, fw), _ = input_map(param, blob)
    x = _as_input(net, name, x)
    pieces = []
    for dy in range(fh):
        for dx in range(fw):
            out = net.forward(blobs=[blob], **{name: x[..., dy:, dx:]})[blob]
            pieces.append(((dy, dx), out.copy()))
    return stitch(pieces, (fh, fw))


def stitch(pieces, step):
    """Interlace pieces [((oy, ox), N x C x h x w array)]: dense[..., oy + step_h*i, ox + step_w*j] = piece[..., i, j].
    The pieces must cover a rectangle from (0, 0) exactly once."""
    (sh, sw), first = step, pieces[0][1]
    xp = backend.get_array_module(first)
    height = max(oy + sh * (p.shape[-2] - 1) + 1 for (oy, _), p in pieces if p.shape[-2])
    width = max(ox + sw * (p.shape[-1] - 1) + 1 for (_, ox), p in pieces if p.shape[-1])
    dense = xp.empty(first.shape[:-2] + (height, width), dtype=first.dtype)
    filled = numpy.zeros((height, width), dtype=numpy.int32)
    for (oy, ox), p in pieces:
        h, w = p.shape[-2:]
        dense[..., oy:oy + sh * h:sh, ox:ox + sw * w:sw] = p
        filled[oy:oy + sh * h:sh, ox:ox + sw * w:sw] += 1
    if (filled != 1).any():
        raise ValueError(f"stitch: the {len(pieces)} pieces do not cover the {height} x {width} dense map once "
                         f"({int((filled == 0).sum())} positions missing, {int((filled > 1).sum())} repeated)")
    return dense


def shift_and_stitch_layerwise(net, blob, x):
    """The dense `blob` for input x, stitched at each strided layer (see the module's docstring)."""
    param = net_param(net)
    ids = chain(param, blob)
    name = _input_blob(net, ids)
    pieces = [((0, 0), _as_input(net, name, x))]
    step = (1, 1)                                    # dense positions between neighbours of the current pieces
    run = []                                         # layers waiting to run on the current pieces
    for i in ids[1:]:
        layer = net.layers[i]
        if layer.type in ("Deconvolution", "InnerProduct") or len(net.bottom_names[i]) != 1:
            raise NetDefinitionError(f"shift_and_stitch_layerwise follows one chain of spatial layers to '{blob}'; "
                                     f"layer '{layer.name}' ({layer.type}) has {len(net.bottom_names[i])} bottom(s)")
        if layer.type == "Split":                    # its tops are copies of its bottom
            continue
        if not is_strided(layer.param):
            run.append(layer)
            continue
        pieces = _run_grouped(run + [_at_stride_one(layer)], pieces)
        run = []
        sh, sw = geometry(layer.param).stride
        pieces = [((oy + step[0] * dy, ox + step[1] * dx), p[..., dy::sh, dx::sw])
                  for (oy, ox), p in pieces for dy in range(sh) for dx in range(sw)
                  if p.shape[-2] > dy and p.shape[-1] > dx]
        step = (step[0] * sh, step[1] * sw)
    pieces = _run_grouped(run, pieces)
    return stitch(pieces, step)


def _at_stride_one(layer):
    """A copy of a strided Convolution or Pooling layer at stride 1 that shares the original's params."""
    copy = create_layer(destrided(layer.param), layer.phase)
    for what in ("base_dir", "source_dir", "need_backward", "bottom_need_backward"):    # what the Net gave it
        setattr(copy, what, getattr(layer, what))
    copy.blobs = list(layer.blobs)                   # set before setup: the layer then makes no params of its own
    copy.needs_setup = True                          # on its first input, whose channels it learns then
    return copy


def _run_grouped(layers, pieces):
    """Run `layers` in turn on every piece; pieces of one shape go through together, stacked on the batch axis."""
    if not layers:
        return pieces
    groups = collections.defaultdict(list)
    for k, (_, p) in enumerate(pieces):
        groups[p.shape].append(k)
    out = {}
    for shape, members in groups.items():
        if not _makes_output(layers, shape):          # too small for a window: no dense position comes from it
            continue
        xp = backend.get_array_module(pieces[members[0]][1])
        x = xp.concatenate([pieces[k][1] for k in members]) if len(members) > 1 else pieces[members[0]][1]
        for layer in layers:
            x = _forward(layer, x)
        for j, k in enumerate(members):
            out[k] = (pieces[k][0], x[j * shape[0]:(j + 1) * shape[0]])
    return [out[k] for k in sorted(out)]


def _makes_output(layers, shape):
    """Whether a map of `shape` still has positions after the windows of `layers` (at their strides)."""
    h, w = shape[-2:]
    for layer in layers:
        if layer.type in STRIDED_TYPES:
            h, w = geometry(layer.param).out_size(h, w)
            if h <= 0 or w <= 0:
                return False
    return True


def _forward(layer, x):
    """One layer's forward on array x, in blobs of its own (the net's blobs are left alone)."""
    xp = backend.get_array_module(x)
    bottom, top = Blob(*x.shape, dtype=x.dtype, xp=xp), Blob(dtype=x.dtype, xp=xp)
    bottom.data = xp.ascontiguousarray(x)
    if getattr(layer, "needs_setup", False):         # a stride-1 copy
        layer.run_setup([bottom], [top])
        layer.needs_setup = False
    layer.run_forward([bottom], [top])
    return top.data


def label_at_input(dense, offset, size, ignore_label=255):
    """The class map (argmax over channels) of a dense N=1 score map placed on an input of `size` (H, W): pixel y
    takes dense position round(y - offset) (input_map's b); pixels the dense map does not reach get ignore_label."""
    scores = numpy.asarray(backend.to_cpu(dense))[0].argmax(0)
    label = numpy.full(size, ignore_label, dtype=numpy.int64)
    rows = numpy.floor(numpy.arange(size[0]) - float(offset[0]) + 0.5).astype(numpy.int64)
    cols = numpy.floor(numpy.arange(size[1]) - float(offset[1]) + 0.5).astype(numpy.int64)
    inside_r = (rows >= 0) & (rows < scores.shape[0])
    inside_c = (cols >= 0) & (cols < scores.shape[1])
    label[numpy.ix_(inside_r, inside_c)] = scores[numpy.ix_(rows[inside_r], cols[inside_c])]
    return label


def infer_dense(net, rgb, mean, blob, offset, shifted):
    """python -m solver.infer --shift-and-stitch / --rarefy: one H x W x 3 RGB image's label from the dense `blob`,
    by shifted inputs through `net` (shifted True) or one pass of a rarefied `net`; returns (label, seconds)."""
    x = preprocess(rgb, mean)[numpy.newaxis]
    start = time.perf_counter()
    dense = (shift_and_stitch(net, blob, x) if shifted else
             net.forward(blobs=[blob], **{input_blob(net): x})[blob])
    label = label_at_input(dense, offset, rgb.shape[:2])             # to_cpu inside waits for the GPU
    return label, time.perf_counter() - start

"""Filter rarefaction (FCN paper, section 3.2): a net's dense output in one pass, as a net transform.

rarefy(net, blob) rewrites a net so that the first strided layer on the way to `blob` (or the layer named) runs at
stride 1 and every later filter is rarefied: a layer whose input is now S times denser than it was made for has
its `dilation` and `pad` multiplied by S (the paper's f'_ij = f_{i/S, j/S} when S divides i and j, else 0, as
Caffe's dilation computes it) and its own stride set to 1, which multiplies S for the layers after it. The
rarefied net's `blob` is the dense map that shift-and-stitch gives (solver/shift_stitch.py), at every position,
computed once; position n of it sits where position n / f would sit in the original net's map.

Caffe's Pooling has no dilation, so a pooling layer after the first de-strided one becomes layers real Caffe
runs: one Crop of the bottom per window tap, at offset (a*S, b*S), reduced by an Eltwise (MAX; SUM with weights
1 / taps for AVE). A Convolution with one output, the window's dilated extent and zero weights (lr_mult 0) gives
the Crops their shape (Crop takes its size from a second bottom). Such a pooling must have no pad: Crops cannot
pad. Layers with params keep their names and shapes, so the original .caffemodel loads into the rarefied net.
(netspec.coord_map follows such a pooling through its first tap, half a window off its centre: place the dense
map with input_map on the original net.)
"""
from fractions import Fraction

from netspec import caffe_pb2, io as netio
from netspec.coord_map import PASS_THROUGH_LAYERS
from netspec.errors import NetDefinitionError
from netspec.geometry import ConvGeometry, pair_or_repeated
from netspec.rules import filter_net

STRIDED_TYPES = ("Convolution", "Pooling")
# layers that act on each position alone, so a denser input changes nothing about them
POINTWISE_TYPES = PASS_THROUGH_LAYERS | {"Concat", "Softmax", "Input", "Silence"}


def _hw(values):
    return (int(values[0]), int(values[-1]))


def geometry(lp):
    """The ConvGeometry ((kh, kw), (sh, sw), (ph, pw), (dh, dw)) of a Convolution or Pooling LayerParameter."""
    if lp.type == "Pooling":
        p = lp.pooling_param
        if p.global_pooling:
            raise NetDefinitionError(f"layer '{lp.name}': global pooling has no window to rarefy")
        dilation = (1,)
    else:
        p = lp.convolution_param
        dilation = tuple(p.dilation) or (1,)
    kernel = pair_or_repeated(p, "kernel", None)
    if not kernel or 0 in kernel:
        raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}) has no kernel size")
    return ConvGeometry(_hw(kernel), _hw(pair_or_repeated(p, "stride", 1)), _hw(pair_or_repeated(p, "pad", 0)),
                        _hw(dilation))


def is_strided(lp):
    return lp.type in STRIDED_TYPES and max(geometry(lp).stride) > 1


def read_filtered(net, phase="TEST"):
    """A net (path, prototxt text or NetParameter) with only the layers of `phase`."""
    return filter_net(netio.read_net(net), phase)


def ancestors(param, blob):
    """Indices of the layers of `param` that `blob` (its value after the whole net ran) depends on, in order."""
    if not any(blob in lp.top for lp in param.layer):
        raise NetDefinitionError(f"net '{param.name}' has no blob '{blob}' (its blobs: "
                                 f"{', '.join(dict.fromkeys(t for lp in param.layer for t in lp.top))})")
    needed, kept = {blob}, []
    for i in range(len(param.layer) - 1, -1, -1):
        lp = param.layer[i]
        if needed & set(lp.top):
            kept.append(i)
            needed -= set(lp.top)
            needed |= set(lp.bottom)
    return kept[::-1]


def _set_pair(p, name, values, singular):
    """Write an (h, w) pair into a conv/pool param: _h/_w if the layer used them, else the plain field."""
    if p.HasField(f"{name}_h"):
        setattr(p, f"{name}_h", values[0])
        setattr(p, f"{name}_w", values[1])
        return
    if singular:                                  # Pooling's pad/stride are single values
        if values[0] != values[1]:
            setattr(p, f"{name}_h", values[0])
            setattr(p, f"{name}_w", values[1])
            p.ClearField(name)
        else:
            setattr(p, name, values[0])
        return
    p.ClearField(name)
    getattr(p, name).extend(values[:1] if values[0] == values[1] else values)


def destrided(lp, dense=(1, 1)):
    """A copy of Convolution or Pooling layer `lp` at stride 1, for an input `dense` times denser than it was
    made for: dilation and pad multiplied by `dense` (a Pooling needs dense (1, 1): see rarefy)."""
    g = geometry(lp)
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(lp)
    singular = lp.type == "Pooling"
    p = out.pooling_param if singular else out.convolution_param
    for field in ("stride", "stride_h", "stride_w"):
        p.ClearField(field)
    if dense != (1, 1):
        _set_pair(p, "pad", tuple(x * s for x, s in zip(g.pad, dense)), singular)
        p.ClearField("dilation")
        p.dilation.extend(_unique(tuple(x * s for x, s in zip(g.dilation, dense))))
    return out


def _unique(pair):
    return pair[:1] if pair[0] == pair[1] else pair


def _dilated_pooling(lp, dense):
    """Pooling `lp` rarefied by `dense`: one Crop per window tap, reduced by an Eltwise named as the pooling."""
    g = geometry(lp)
    p = lp.pooling_param
    if p.pool not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise NetDefinitionError(f"layer '{lp.name}': only MAX and AVE pooling can be rarefied (it is "
                                 f"{caffe_pb2.PoolingParameter.PoolMethod.Name(p.pool)})")
    if any(g.pad):
        raise NetDefinitionError(f"layer '{lp.name}': a pooling after the first de-strided layer must have no pad "
                                 f"to be rarefied (it has pad {g.pad}): Crops cannot pad")
    if g.kernel == (1, 1):                        # one tap: only the stride changes
        return [destrided(lp)]
    (kh, kw), (sh, sw) = g.kernel, dense
    bottom, top = lp.bottom[0], lp.top[0]
    layers = []
    shape = caffe_pb2.LayerParameter(name=f"{lp.name}_window", type="Convolution", bottom=[bottom],
                                     top=[f"{lp.name}_window"])
    shape.param.add(lr_mult=0, decay_mult=0)
    c = shape.convolution_param
    c.num_output, c.bias_term = 1, False
    c.kernel_size.extend(_unique((kh, kw)))
    c.dilation.extend(_unique((sh, sw)))
    layers.append(shape)
    taps = []
    for a in range(kh):
        for b in range(kw):
            name = f"{lp.name}_tap{a}_{b}"
            crop = caffe_pb2.LayerParameter(name=name, type="Crop", bottom=[bottom, shape.top[0]], top=[name])
            crop.crop_param.axis = 2
            crop.crop_param.offset.extend([a * sh, b * sw])
            layers.append(crop)
            taps.append(name)
    reduce = caffe_pb2.LayerParameter(name=lp.name, type="Eltwise", bottom=taps, top=[top])
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        reduce.eltwise_param.operation = caffe_pb2.EltwiseParameter.MAX
    else:
        reduce.eltwise_param.operation = caffe_pb2.EltwiseParameter.SUM
        reduce.eltwise_param.coeff.extend([1.0 / len(taps)] * len(taps))
    layers.append(reduce)
    return layers


def rarefy(net, blob, layer=None, phase="TEST"):
    """The rarefied net (a NetParameter) computing `blob` densely: `layer` (default: the first strided layer
    `blob` depends on) and every later strided layer run at stride 1, later filters rarefied. Only the layers
    `blob` depends on are kept (what consumes it, upsampling and loss, is dropped). `net` is a path, prototxt
    text or NetParameter, read in `phase`. Layers that are neither convolutions, poolings nor pointwise cannot
    follow the first de-strided layer: the error names the first such layer."""
    param = read_filtered(net, phase)
    kept = ancestors(param, blob)
    strided = [i for i in kept if is_strided(param.layer[i])]
    if layer is None:
        if not strided:
            raise NetDefinitionError(f"net '{param.name}': no layer on the way to '{blob}' has a stride above 1; "
                                     f"'{blob}' is already dense")
        start = strided[0]
    else:
        names = [param.layer[i].name for i in kept]
        if layer not in names:
            raise NetDefinitionError(f"net '{param.name}': '{blob}' does not depend on a layer '{layer}' "
                                     f"(it depends on {', '.join(names)})")
        start = kept[names.index(layer)]
        if not is_strided(param.layer[start]):
            raise NetDefinitionError(f"layer '{layer}' ({param.layer[start].type}) has no stride to remove")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    out.ClearField("layer")
    out.name = f"{param.name}-rarefied" if param.name else "rarefied"
    dense = {}                                    # blob -> how many times denser than the original, (h, w)
    for i in kept:
        lp = param.layer[i]
        factors = {dense.get(b, (1, 1)) for b in lp.bottom} or {(1, 1)}
        if len(factors) > 1:
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}) joins blobs of different densities "
                                     f"({', '.join(f'{b} x{dense.get(b, (1, 1))}' for b in lp.bottom)})")
        factor = factors.pop()
        made = factor
        if i >= start and lp.type in STRIDED_TYPES:
            stride = geometry(lp).stride
            made = (factor[0] * stride[0], factor[1] * stride[1])
            if lp.type == "Pooling" and factor != (1, 1):
                out.layer.extend(_dilated_pooling(lp, factor))
            else:
                out.layer.add().CopyFrom(destrided(lp, factor))
        elif factor != (1, 1) and lp.type not in POINTWISE_TYPES:
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}) follows the de-strided layer "
                                     f"'{param.layer[start].name}' and cannot be rarefied (only Convolution, Pooling "
                                     f"and pointwise layers can): rarefy a blob before it")
        else:
            out.layer.add().CopyFrom(lp)
        for t in lp.top:
            dense[t] = made
    return out


def input_map(net, blob, phase="TEST"):
    """((fh, fw), (bh, bw)): position i of `blob` sits at input pixel f*i + b (its window's centre), following the
    way from the input through each layer's first bottom. f is the output stride, whole numbers; b is exact
    (a Fraction). Position n of the dense map (shift-and-stitch's, the rarefied net's) sits at n + b."""
    param = read_filtered(net, phase)
    stride, offset = [1, 1], [Fraction(0), Fraction(0)]
    for i in chain(param, blob):
        lp = param.layer[i]
        if lp.type in ("Deconvolution", "InnerProduct"):
            raise NetDefinitionError(f"layer '{lp.name}' ({lp.type}) lies on the way to '{blob}': its positions are "
                                     f"not a strided grid of the input's; name a blob before it")
        if lp.type in STRIDED_TYPES:              # bottom position = s * top position + (extent - 1) / 2 - pad
            g = geometry(lp)
            for axis in (0, 1):
                extent = (g.kernel[axis] - 1) * g.dilation[axis] + 1
                offset[axis] += stride[axis] * (Fraction(extent - 1, 2) - g.pad[axis])
                stride[axis] *= g.stride[axis]
        elif lp.type == "Crop":
            offsets = list(lp.crop_param.offset) or [0]
            axis0 = lp.crop_param.axis
            for axis in (0, 1):
                k = axis + 2 - axis0
                if k >= 0:
                    offset[axis] += stride[axis] * offsets[min(k, len(offsets) - 1)]
    return tuple(stride), tuple(offset)


def chain(param, blob):
    """Indices of the layers from the input to `blob`, following each layer's first bottom back (in-place layers
    included), in order."""
    ids, current, end = [], blob, len(param.layer)
    while current is not None:
        producers = [i for i in range(end) if current in param.layer[i].top]
        if not producers:
            raise NetDefinitionError(f"net '{param.name}' has no blob '{current}'")
        end = producers[-1]
        ids.append(end)
        lp = param.layer[end]
        current = lp.bottom[0] if lp.bottom else None
    return ids[::-1]

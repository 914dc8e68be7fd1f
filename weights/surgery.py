"""Net surgery for FCN: turn a classifier into a fully convolutional net and hand weights from stage to stage.

The functions follow FCN's surgery.py (shelhamer/fcn.berkeleyvision.org) and work on a layers.Net as pycaffe's
work on caffe.Net; weights may also come as a NetParameter, a Weights or a .caffemodel/.caffemodel.h5 path.

- upsample_filt(size): the bilinear upsampling kernel FCN puts in its Deconvolution layers.
- interp(net, layers): set Deconvolution weights to that kernel on the channel diagonal.
- transplant(new_net, source, suffix): copy params by layer name wherever the element counts agree,
  reshaping as needed (FCN's "coercion": fc6 4096x25088 -> 4096x512x7x7).
- convolutionalize(weights, ...): the starting weights of an FCN from a classifier: fully connected layers
  become convolutions (paper section 3.1), the final classifier is dropped.
- handoff(new_net, source): FCN's stage hand-off (32s -> 16s -> 8s): copy by name with Caffe's shape rule,
  new score layers start at zero and new upsampling layers bilinear, so the skips add nothing at first.
"""
import collections
from typing import Tuple

import numpy as np

from netspec import caffe_pb2 as pb
from netspec import io
from weights import caffemodel

__all__ = ["Report", "upsample_filt", "interp", "transplant", "convolutionalize", "handoff", "load_net",
           "source_params"]


class Report:
    """What a surgery did, layer by layer. Each list holds (layer, detail) pairs; str() gives one line each."""
    KINDS = ("copied", "reshaped", "converted", "bilinear", "zeroed", "skipped", "dropped", "untouched")

    def __init__(self):
        for kind in self.KINDS:
            setattr(self, kind, [])

    def add(self, kind, layer, detail=""):
        getattr(self, kind).append((layer, detail))

    def names(self, kind):
        return [layer for layer, _ in getattr(self, kind)]

    def lines(self):
        return [f"{kind:9s} {layer}{': ' + detail if detail else ''}"
                for kind in self.KINDS for layer, detail in getattr(self, kind)]

    def __str__(self):
        return "\n".join(self.lines())


# ---- bilinear upsampling ----------------------------------------------------------------------

def upsample_filt(size: int) -> np.ndarray:
    """A size x size bilinear kernel for upsampling by (size + 1) // 2, centred as FCN's surgery does
    (size 4 -> 1-D [.25, .75, .75, .25]; an odd size centres on the middle tap)."""
    size = int(size)
    if size < 1:
        raise ValueError(f"upsample_filt: the kernel size must be positive, got {size}")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(size) - center) / factor
    return taps[:, None] * taps[None, :]


def interp(net, layers=None):
    """Set the weights of Deconvolution `layers` (default: every Deconvolution layer whose name contains
    'up', as FCN's solve.py picks them) to bilinear upsampling: each output channel upsamples its own input
    channel (the diagonal), all other weights zero. Returns the names set.

    Each weight must be C x C x k x k (or C x 1 x k x k, one channel per group): anything else is an error
    naming the layer and its shape."""
    if layers is None:
        layers = [name for name, layer in net.layer_dict.items()
                  if "up" in name and layer.type == "Deconvolution" and layer.blobs]
    elif isinstance(layers, str):
        layers = [layers]
    for name in layers:
        layer = net.layer_dict.get(name)
        if layer is None or not layer.blobs:
            with_params = [n for n, l in net.layer_dict.items() if l.type == "Deconvolution"]
            raise ValueError(f"interp: net '{net.name}' has no Deconvolution layer '{name}' with params "
                             f"(Deconvolution layers: {', '.join(with_params) or 'none'})")
        if layer.type != "Deconvolution":
            raise ValueError(f"interp: layer '{name}' is a {layer.type} layer; bilinear weights belong in "
                             f"Deconvolution (upsampling) layers")
        weight = layer.blobs[0]
        shape = weight.shape
        if len(shape) != 4 or (shape[0] != shape[1] and shape[1] != 1) or shape[2] != shape[3]:
            raise ValueError(f"interp: Deconvolution layer '{name}' has weight shape {shape}; bilinear "
                             f"interpolation needs C x C x k x k (as many outputs as inputs, or group = C for "
                             f"C x 1 x k x k) with a square kernel")
        values = np.zeros(shape, dtype=weight.dtype)
        channels = np.arange(shape[0])
        values[channels, 0 if shape[1] == 1 else channels] = upsample_filt(shape[2])
        weight.data[...] = weight.xp.asarray(values)
    return list(layers)


# ---- copying by name --------------------------------------------------------------------------

def source_params(source):
    """{layer name: [ndarray or None per blob]} of a Net, NetParameter, Weights or weights path, with legacy
    shapes normalized as Caffe loads them. None marks a shared-param slot an HDF5 file leaves empty."""
    if hasattr(source, "layer_dict") and hasattr(source, "params"):       # a layers.Net
        from layers import backend
        return collections.OrderedDict((name, [backend.to_cpu(b.data) for b in blobs])
                                       for name, blobs in source.params.items())
    if isinstance(source, pb.NetParameter):
        param = pb.NetParameter()
        param.CopyFrom(source)
        caffemodel.normalize_shapes(param)
        source = caffemodel.Weights(param, "NetParameter")
    elif not isinstance(source, caffemodel.Weights):
        source = caffemodel.load(source)
    return collections.OrderedDict(source.arrays())


def transplant(new_net, source, suffix: str = "") -> Report:
    """Copy every param of `source` into the same-named layer of `new_net` (layer name + `suffix`) where
    the element counts agree, reshaping in C order when the shapes differ. Returns a Report: copied,
    reshaped (old -> new shape), skipped (count mismatch, or a blob the new layer lacks), dropped (source
    layers the new net lacks) and untouched (new-net layers nothing was copied into).

    This is FCN's surgery.transplant, except that a count mismatch is reported instead of raising; the
    suffix lets several nets fill one (NYUD color-hha: suffix 'color' and 'hha')."""
    report = Report()
    params = source_params(source)
    for name, arrays in params.items():
        target = name + suffix
        if target not in new_net.params:
            report.add("dropped", name, f"no layer '{target}' with params in the new net")
            continue
        blobs = new_net.params[target]
        for i, array in enumerate(arrays):
            label = f"{target}[{i}]"
            if i >= len(blobs):
                report.add("skipped", label, f"the new layer has only {len(blobs)} param blob(s)")
            elif array is None:
                report.add("skipped", label, "no values in the source (a shared param)")
            elif array.size != blobs[i].count:
                report.add("skipped", label, f"{array.size} values {tuple(array.shape)} do not fit "
                                             f"{blobs[i].count} {blobs[i].shape}")
            else:
                blobs[i].data[...] = blobs[i].xp.asarray(array.reshape(blobs[i].shape), dtype=blobs[i].dtype)
                if tuple(array.shape) == blobs[i].shape:
                    report.add("copied", label, dims(array.shape))
                else:
                    report.add("reshaped", label, f"{dims(array.shape)} -> {dims(blobs[i].shape)}")
    written = {name + suffix for name in params}
    for name in new_net.params:
        if name not in written:
            report.add("untouched", name, "not in the source; keeps its values")
    return report


def handoff(new_net, source, origin=None) -> Report:
    """Initialise the next FCN stage (16s from 32s, 8s from 16s) so that it starts with the predictions of
    the one before it: params are copied by layer name under Caffe's rules (Net.copy_from: equal shapes,
    legacy shapes right-aligned; a mismatch raises, naming layer, param and both shapes); then every layer
    the source lacks is initialised: Deconvolution -> bilinear (interp), Convolution / InnerProduct (the new
    skip score layers) -> zero, anything else keeps its filler. Returns a Report."""
    report = Report()
    if hasattr(source, "to_proto"):
        origin = origin or f"net '{source.name}'"
        param = source.to_proto()
    elif isinstance(source, pb.NetParameter):
        param = source
    else:
        weights = source if isinstance(source, caffemodel.Weights) else caffemodel.load(source)
        origin = origin or weights.path
        param = weights.param
    new_net.copy_from_proto(param, origin=origin or "the source weights")
    copied = set()
    for layer in param.layer:
        if not len(layer.blobs):
            continue
        if layer.name in new_net.params:
            copied.add(layer.name)
            report.add("copied", layer.name, ", ".join(dims(b.shape) for b in new_net.params[layer.name]))
        else:
            report.add("dropped", layer.name, "not in the new net")
    for name, blobs in new_net.params.items():
        if name in copied:
            continue
        kind = new_net.layer_dict[name].type
        if kind == "Deconvolution":
            interp(new_net, [name])
            report.add("bilinear", name, dims(blobs[0].shape))
        elif kind in ("Convolution", "InnerProduct"):
            for blob in blobs:
                blob.data[...] = 0
            report.add("zeroed", name, "a new score layer: contributes nothing until trained")
        else:
            report.add("untouched", name, f"a new {kind} layer; keeps its filler values")
    return report


# ---- classifier -> FCN ------------------------------------------------------------------------

def convolutionalize(weights, classifier=None, fcn=None, fc_shapes=None, drop=None) -> Tuple[pb.NetParameter, Report]:
    """The starting weights of an FCN from a classifier's weights: each InnerProduct layer becomes a
    Convolution whose kernel covers its whole input (VGG16 fc6 4096x25088 -> 4096x512x7x7, fc7 4096x4096 ->
    4096x4096x1x1), the final classifier is dropped, and the other layers' params are kept as they are.

    weights: the classifier's .caffemodel / .caffemodel.h5 (path, Weights or NetParameter).
    classifier: its deploy prototxt; gives the kernel shapes (the C x H x W of each fc layer's input,
        from the net's geometry) and the layer types an HDF5 file lacks.
    fcn: the FCN net prototxt (optional): then the kernel shapes come from its Convolution layers of the
        same names, and every layer it does not have is dropped (the classifier, fc8, among them).
    fc_shapes: {fc layer name: (C, H, W)} given directly; wins over both.
    drop: layer names to drop (without `fcn`, the default is the last InnerProduct layer).
    Returns (NetParameter with one layer per kept param layer, Report).
    """
    if isinstance(weights, pb.NetParameter):
        param = pb.NetParameter()
        param.CopyFrom(weights)
        caffemodel.normalize_shapes(param)
    else:
        loaded = weights if isinstance(weights, caffemodel.Weights) else caffemodel.load(weights, net=classifier)
        param = loaded.param
    fcn_layers = _fcn_layers(fcn) if fcn is not None else None
    fc_layers = [layer for layer in param.layer if layer.type == "InnerProduct" and len(layer.blobs)]
    transposed = {layer.name for layer in fc_layers if layer.inner_product_param.transpose}
    if classifier is not None:
        transposed |= {layer.name for layer in io.read_net(classifier).layer if layer.inner_product_param.transpose}
    if not fc_layers:
        untyped = [layer.name for layer in param.layer if len(layer.blobs) and not layer.type]
        hint = (f"; the file gives no types for {', '.join(untyped)}: pass the classifier's deploy prototxt"
                if untyped else "")
        raise ValueError(f"convolutionalize: the weights hold no InnerProduct layer with params{hint}")
    if drop is None:
        drop = [] if fcn_layers is not None else [_last_fc(fc_layers, classifier).name]
    drop = set(drop)
    missing = [name for name in drop if name not in {layer.name for layer in param.layer}]
    if missing:
        raise ValueError(f"convolutionalize: no layer {', '.join(repr(m) for m in missing)} to drop in the weights")
    shapes = dict(fc_shapes or {})
    needs_geometry = [layer for layer in fc_layers if layer.name not in shapes and layer.name not in drop
                      and (fcn_layers is None or layer.name in fcn_layers)]
    if fcn_layers is not None:
        for layer in needs_geometry:
            shapes[layer.name] = _shape_from_fcn(layer, fcn_layers[layer.name], layer.name in transposed)
    elif needs_geometry:
        if classifier is None:
            raise ValueError(f"convolutionalize: the kernel shapes of {', '.join(l.name for l in needs_geometry)} "
                             f"need the classifier's deploy prototxt, the FCN net prototxt, or fc_shapes")
        shapes.update(_shapes_from_classifier(classifier, needs_geometry, transposed))

    out = pb.NetParameter(name=param.name)
    report = Report()
    for layer in param.layer:
        if not len(layer.blobs):
            continue
        if layer.name in drop or (fcn_layers is not None and layer.name not in fcn_layers):
            report.add("dropped", layer.name, "the classifier" if layer.name in drop else "not in the FCN net")
            continue
        new = out.layer.add(name=layer.name, type=layer.type)
        if layer.type != "InnerProduct":
            new.blobs.extend(layer.blobs)
            report.add("copied", layer.name, ", ".join(dims(io.blob_shape(b)) for b in layer.blobs))
            continue
        weight = io.blob_to_array(layer.blobs[0])
        if layer.name in transposed:
            weight = weight.T                    # stored K x M
        c, h, w = (int(d) for d in shapes[layer.name])
        if weight.ndim != 2 or weight.shape[1] != c * h * w:
            raise ValueError(f"convolutionalize: InnerProduct layer '{layer.name}' has weight shape "
                             f"{tuple(weight.shape)}, which does not take a {c} x {h} x {w} input "
                             f"({c * h * w} values per output)")
        kernel = weight.reshape(weight.shape[0], c, h, w)    # C order: IP flattens its input the same way
        new.type = "Convolution"
        new.blobs.add().CopyFrom(io.array_to_blob(np.ascontiguousarray(kernel)))
        new.blobs.extend(layer.blobs[1:])
        report.add("converted", layer.name, f"InnerProduct {dims(weight.shape)} -> Convolution {dims(kernel.shape)}")
    if fcn_layers is not None:
        present = {layer.name for layer in param.layer}
        for name, layer in fcn_layers.items():
            if name not in present and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
                report.add("untouched", name, "an FCN layer the classifier lacks; it keeps its filler (or surgery)")
    return out, report


def _fcn_layers(fcn):
    return collections.OrderedDict((layer.name, layer) for layer in io.read_net(fcn).layer)


def _last_fc(fc_layers, classifier):
    if classifier is not None:
        order = [layer.name for layer in io.read_net(classifier).layer]
        ranked = [layer for layer in fc_layers if layer.name in order]
        if ranked:
            return max(ranked, key=lambda layer: order.index(layer.name))
    return fc_layers[-1]


def _shape_from_fcn(fc, conv, transposed):
    """(C, H, W) of FCN Convolution `conv` replacing InnerProduct `fc`: H x W from its kernel, C from the count."""
    if conv.type != "Convolution":
        raise ValueError(f"convolutionalize: the FCN net's layer '{conv.name}' is a {conv.type} layer; the "
                         f"classifier's InnerProduct '{fc.name}' can only become a Convolution")
    p = conv.convolution_param
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        h, w = p.kernel_h, p.kernel_w
    elif len(p.kernel_size) in (1, 2):
        h, w = p.kernel_size[0], p.kernel_size[-1]
    else:
        raise ValueError(f"convolutionalize: FCN layer '{conv.name}' needs a 2-D kernel_size")
    weight_shape = io.blob_shape(fc.blobs[0])
    count = int(np.prod(weight_shape))
    outputs = weight_shape[-1] if transposed else weight_shape[0]
    if p.num_output != outputs or p.group != 1:
        raise ValueError(f"convolutionalize: FCN layer '{conv.name}' has num_output {p.num_output} and group "
                         f"{p.group}; the classifier's '{fc.name}' has {outputs} outputs (group must be 1)")
    channels, rest = divmod(count // outputs, h * w)
    if rest:
        raise ValueError(f"convolutionalize: '{fc.name}' takes {count // outputs} inputs per output, not a whole "
                         f"number of {h} x {w} kernels as FCN layer '{conv.name}' has")
    return channels, h, w


def _shapes_from_classifier(classifier, fc_layers, transposed):
    """{name: (C, H, W)} of each fc layer's input, read off the classifier net built up to its first
    InnerProduct layer (batch 1); an fc layer fed by another fc layer gets (K, 1, 1)."""
    net_param = io.read_net(classifier)
    by_name = {layer.name: layer for layer in net_param.layer}
    first = min(i for i, layer in enumerate(net_param.layer) if layer.type == "InnerProduct")
    trunk = pb.NetParameter()
    trunk.CopyFrom(net_param)
    del trunk.layer[first:]
    _batch_one(trunk)
    from layers import Net
    try:
        net = Net(trunk)
    except ValueError as e:
        raise ValueError(f"convolutionalize: cannot build the classifier up to its first fully connected layer "
                         f"to read the fc input shapes ({e}); give fc_shapes or the FCN net prototxt instead") from e
    shapes = {}
    for fc in fc_layers:
        spec = by_name.get(fc.name)
        if spec is None:
            raise ValueError(f"convolutionalize: the classifier prototxt has no layer '{fc.name}'")
        if spec.inner_product_param.axis != 1:
            raise ValueError(f"convolutionalize: InnerProduct '{fc.name}' uses axis {spec.inner_product_param.axis}; "
                             f"only axis 1 (one item per image) has a convolutional equivalent")
        bottom = spec.bottom[0]
        if bottom in net.blobs:
            shape = net.blobs[bottom].shape[1:]
            if len(shape) > 3:
                raise ValueError(f"convolutionalize: '{fc.name}' reads blob '{bottom}' of shape "
                                 f"{net.blobs[bottom].shape}; only C x H x W inputs have a 2-D convolution")
            shapes[fc.name] = tuple(shape) + (1,) * (3 - len(shape))
        else:
            shape = io.blob_shape(fc.blobs[0])
            inputs = shape[0] if fc.name in transposed else shape[-1]
            shapes[fc.name] = (inputs, 1, 1)
    return shapes


# ---- nets for the command line ----------------------------------------------------------------

def load_net(prototxt, weights=None, phase="TEST"):
    """Build a Net from `prototxt` with its Input batch set to 1 (param shapes never depend on it, and it
    saves memory), copying `weights` in when given."""
    from layers import Net
    param = io.read_net(prototxt)
    _batch_one(param)
    net = Net(param, phase=phase)
    if weights is not None:
        net.copy_from(weights)
    return net


def _batch_one(param):
    for layer in param.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                if len(shape.dim):
                    shape.dim[0] = 1


def dims(shape):
    """A shape as text: 4096x512x7x7, or "scalar"."""
    return "x".join(str(int(d)) for d in shape) if len(shape) else "scalar"


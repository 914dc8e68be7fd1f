"""Upgrade legacy Caffe definitions to the current form, as Caffe's util/upgrade_proto.cpp does.

Caffe upgrades every net it reads (text or binary) in this order:
  V0 (layers { layer { type: "conv" } }) -> V1, folding "padding" layers into the next conv/pool;
  old data-layer transform fields -> transform_param;
  V1 (layers { type: CONVOLUTION blobs_lr: 1 }) -> layer { type: "Convolution" param { lr_mult: 1 } };
  net-level input/input_dim/input_shape -> an Input layer named "input", placed first;
  BatchNorm layers with 3 param specs -> lr_mult 0 / decay_mult 0 on all three.
A solver's deprecated `solver_type` enum becomes the `type` string.
Every function here is pure: it returns a new message and leaves its argument alone.
"""
import warnings

from netspec import caffe_pb2 as pb
from netspec.errors import CaffeFormatError

V1 = pb.V1LayerParameter

# UpgradeV1LayerType: V1 enum -> layer type string.
V1_LAYER_TYPES = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss", V1.INNER_PRODUCT: "InnerProduct",
    V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData", V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    V1.MVN: "MVN", V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split", V1.SLICE: "Slice",
    V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData", V1.THRESHOLD: "Threshold",
}

# UpgradeV0LayerType: V0 type string -> V1 enum.
V0_LAYER_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING, "relu": V1.RELU,
    "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX, "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT,
    "tanh": V1.TANH, "window_data": V1.WINDOW_DATA,
}


def _conv_ip(field):
    return {"conv": f"convolution_param.{field}", "innerproduct": f"inner_product_param.{field}"}


def _conv_pool(field):
    return {"conv": f"convolution_param.{field}", "pool": f"pooling_param.{field}"}


# UpgradeV0LayerParameter as a table: V0 field -> {V0 type: "<v1 *_param>.<field>"}.
# The key None means "any layer type" (Caffe moves these into transform_param unconditionally).
V0_FIELD_TARGETS = {
    "num_output": _conv_ip("num_output"),
    "biasterm": _conv_ip("bias_term"),
    "weight_filler": _conv_ip("weight_filler"),
    "bias_filler": _conv_ip("bias_filler"),
    "pad": _conv_pool("pad"),
    "kernelsize": _conv_pool("kernel_size"),
    "group": {"conv": "convolution_param.group"},
    "stride": _conv_pool("stride"),
    "pool": {"pool": "pooling_param.pool"},  # same enum numbering in V0 and PoolingParameter
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {"data": "data_param.source", "hdf5_data": "hdf5_data_param.source",
               "images": "image_data_param.source", "window_data": "window_data_param.source",
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {None: "transform_param.scale"},
    "meanfile": {None: "transform_param.mean_file"},
    "batchsize": {"data": "data_param.batch_size", "hdf5_data": "hdf5_data_param.batch_size",
                  "images": "image_data_param.batch_size", "window_data": "window_data_param.batch_size"},
    "cropsize": {None: "transform_param.crop_size"},
    "mirror": {None: "transform_param.mirror"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}

# Data layers whose own params once held the transform fields (UpgradeNetDataTransformation).
_TRANSFORM_OWNERS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                     V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

SOLVER_TYPES = {
    pb.SolverParameter.SGD: "SGD", pb.SolverParameter.NESTEROV: "Nesterov",
    pb.SolverParameter.ADAGRAD: "AdaGrad", pb.SolverParameter.RMSPROP: "RMSProp",
    pb.SolverParameter.ADADELTA: "AdaDelta", pb.SolverParameter.ADAM: "Adam",
}


def net_needs_upgrade(net):
    """True when `net` uses any deprecated form that upgrade_net rewrites."""
    return bool(len(net.layers) or _has_input_fields(net) or _needs_batch_norm_upgrade(net))


def upgrade_net(net, source="<net>"):
    """Return a copy of NetParameter `net` in current form (see the module docstring).

    `source` names the file in error messages.
    """
    out = pb.NetParameter()
    out.CopyFrom(net)
    if any(conn.HasField("layer") for conn in out.layers):
        out = _upgrade_v0_net(out, source)
    _upgrade_data_transform(out)
    if len(out.layers):
        out = _upgrade_v1_net(out, source)
    if _has_input_fields(out):
        _upgrade_input(out, source)
    _upgrade_batch_norm(out)
    return out


def upgrade_solver(solver, source="<solver>"):
    """Return a copy of SolverParameter `solver` with `solver_type` (enum) turned into `type`."""
    out = pb.SolverParameter()
    out.CopyFrom(solver)
    if out.HasField("solver_type"):
        if out.HasField("type"):
            raise CaffeFormatError(
                f"{source}: the old solver_type field (enum) and the new type field (string) cannot "
                f"both be given; delete solver_type", source, field="solver_type")
        out.type = SOLVER_TYPES[out.solver_type]
        out.ClearField("solver_type")
    return out


# ---- V0 -> V1 ---------------------------------------------------------------------------------

def _upgrade_v0_net(net, source):
    padded = _fold_v0_padding_layers(net, source)
    # Caffe's UpgradeV0Net keeps only these net-level fields.
    out = pb.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        _upgrade_v0_layer(conn, out.layers.add(), source)
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


def _fold_v0_padding_layers(net, source):
    """Drop V0 "padding" layers; the conv/pool layer they fed takes their pad and their input."""
    out = pb.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    producer = {name: -1 for name in net.input}  # blob -> index of the layer that last wrote it
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in producer:
                raise CaffeFormatError(
                    f"{source}: unknown bottom blob '{blob}' (V0 layer '{v0.name}', bottom index {j})", source)
            src_index = producer[blob]
            if src_index == -1 or net.layers[src_index].layer.type != "padding":
                continue
            pad_conn = net.layers[src_index]
            if v0.type not in ("conv", "pool"):
                raise CaffeFormatError(
                    f"{source}: padding layer '{pad_conn.layer.name}' feeds V0 layer '{v0.name}' of type "
                    f"'{v0.type}'; only conv and pool layers can absorb a padding layer", source)
            if len(conn.bottom) != 1 or len(pad_conn.bottom) != 1 or len(pad_conn.top) != 1:
                raise CaffeFormatError(
                    f"{source}: padding layer '{pad_conn.layer.name}' and its consumer '{v0.name}' must each "
                    f"have exactly one input (and the padding layer one output)", source)
            folded = out.layers[len(out.layers) - 1]
            folded.layer.pad = pad_conn.layer.pad
            folded.bottom[j] = pad_conn.bottom[0]
        for blob in conn.top:
            producer[blob] = i
    return out


def _upgrade_v0_layer(conn, out, source):
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_LAYER_TYPES:
            raise CaffeFormatError(f"{source}: unknown V0 layer type '{v0.type}' (layer '{v0.name}')", source)
        out.type = V0_LAYER_TYPES[v0.type]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field, targets in V0_FIELD_TARGETS.items():
        if not v0.HasField(field):
            continue
        target = targets.get(v0.type, targets.get(None))
        if target is None:
            # Caffe logs this and carries on ("continuing anyway"); so do we.
            warnings.warn(f"{source}: V0 layer '{v0.name}': unknown parameter {field} for layer type "
                          f"{v0.type}; dropped", stacklevel=3)
            continue
        _assign_path(out, target, getattr(v0, field))


def _assign_path(msg, path, value):
    """Set msg.<a>.<b> = value: append to a repeated field, copy a message, else assign."""
    *parents, name = path.split(".")
    for part in parents:
        msg = getattr(msg, part)
    field = msg.DESCRIPTOR.fields_by_name[name]
    if field.message_type is not None:
        getattr(msg, name).CopyFrom(value)
    elif _is_repeated(field):
        getattr(msg, name).append(value)
    else:
        setattr(msg, name, value)


def _is_repeated(field):
    # FieldDescriptor.label is deprecated in newer protobuf releases; prefer is_repeated.
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == field.LABEL_REPEATED


# ---- data transform fields --------------------------------------------------------------------

def _upgrade_data_transform(net):
    """In place: move scale/mean_file/crop_size/mirror of V1 data layers into transform_param."""
    for layer in net.layers:
        owner = _TRANSFORM_OWNERS.get(layer.type)
        if owner is None or not layer.HasField(owner):
            continue
        params = getattr(layer, owner)
        for name in _TRANSFORM_FIELDS:
            if params.HasField(name):
                setattr(layer.transform_param, name, getattr(params, name))
                params.ClearField(name)


# ---- V1 -> V2 ---------------------------------------------------------------------------------

def _upgrade_v1_net(net, source):
    if len(net.layer):
        # Caffe drops the `layer` entries here ("these will be ignored"); a silent loss is worse.
        raise CaffeFormatError(
            f"{source}: the net mixes current 'layer' entries with deprecated V1 'layers' entries; "
            f"use one form only", source, field="layers")
    out = pb.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    for v1 in net.layers:
        _upgrade_v1_layer(v1, out.layer.add(), source)
    return out


def _upgrade_v1_layer(v1, out, source):
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        out.type = V1_LAYER_TYPES[v1.type]
    out.blobs.extend(v1.blobs)

    def spec(i):  # param i, creating param specs up to it as Caffe does
        while len(out.param) <= i:
            out.param.add()
        return out.param[i]

    for i, name in enumerate(v1.param):
        spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        spec(i).share_mode = mode  # same numbering: STRICT 0, PERMISSIVE 1
    for i, lr in enumerate(v1.blobs_lr):
        spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        spec(i).decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    # Every V1 *_param has the same name and type in LayerParameter.
    for field in v1.DESCRIPTOR.fields:
        if field.name.endswith("_param") and v1.HasField(field.name):
            getattr(out, field.name).CopyFrom(getattr(v1, field.name))
    if v1.HasField("layer"):
        warnings.warn(f"{source}: V1 layer '{v1.name}' also holds a V0 layer definition; ignored "
                      f"(as Caffe does)", stacklevel=4)


# ---- input fields -> Input layer --------------------------------------------------------------

def _has_input_fields(net):
    return bool(len(net.input) or len(net.input_shape) or len(net.input_dim))


def _upgrade_input(net, source):
    """In place: turn input + input_shape/input_dim into a first layer "input" of type Input."""
    names = list(net.input)
    shapes = [list(s.dim) for s in net.input_shape]
    dims = list(net.input_dim)
    if shapes or dims:
        if shapes and len(shapes) != len(names):
            raise CaffeFormatError(
                f"{source}: {len(names)} input(s) but {len(shapes)} input_shape(s); give one shape per input",
                source, field="input_shape")
        if not shapes and len(dims) != 4 * len(names):
            raise CaffeFormatError(
                f"{source}: {len(names)} input(s) need {4 * len(names)} input_dim values "
                f"(num, channels, height, width each), got {len(dims)}", source, field="input_dim")
        layer = pb.LayerParameter(name="input", type="Input", top=names)
        for i in range(len(names)):
            # input_shape wins over input_dim when both are given, as in Caffe.
            layer.input_param.shape.add().dim.extend(shapes[i] if shapes else dims[4 * i:4 * i + 4])
        layers = [layer] + list(net.layer)
        net.ClearField("layer")
        net.layer.extend(layers)
    # A legacy caffemodel names its inputs without shapes: dropping the field is the whole upgrade.
    for name in ("input", "input_shape", "input_dim"):
        net.ClearField(name)


# ---- BatchNorm ----------------------------------------------------------------------------------

def _needs_batch_norm_upgrade(net):
    return any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net.layer)


def _upgrade_batch_norm(net):
    """In place: old BatchNorm definitions declared 3 learnable params; its statistics are not learned."""
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0

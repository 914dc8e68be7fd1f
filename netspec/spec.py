"""NetSpec: write Caffe nets in Python (the API of caffe/python/caffe/net_spec.py, on our caffe_pb2).

    from netspec import NetSpec, layers as L, params as P, to_text
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 500, 500]))
    n.conv1 = L.Convolution(n.data, num_output=64, kernel_size=3, pad=100,
                            param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    print(to_text(n.to_proto()))

`L.<Type>(bottoms..., ntop=1, in_place=False, **params)` makes a layer of that type and returns its top (a
tuple of tops when ntop > 1, the Function itself when ntop == 0). Keyword arguments are routed as Caffe routes
them: a name ending in "param" (`param=[...]`, `convolution_param=dict(...)`) is a LayerParameter field;
any other name goes to the layer's own `<type>_param` message when that message has such a field, and to the
LayerParameter otherwise (`loss_weight=`, `include=`, `name=`). Dicts become messages, lists become repeated
fields, a single value given to a repeated field becomes a one-element list. `P.Pooling.MAX` reads enum values.

Tops assigned to a NetSpec are named after the attribute; the layer is named after its first top. Other
layers and tops get automatic names (`Convolution1`). An in-place layer writes its bottom's blob.

Beyond Caffe's: errors name the call (`L.Convolution(kernal_size=...)`) and are raised when the layer is
written, not when the net is serialised; Deconvolution and Im2col keyword arguments go to convolution_param
(Caffe makes you spell `convolution_param=dict(...)`); "*Loss" layers send loss fields to loss_param; enum
fields also take their value names as strings (`pool="MAX"`); tuples count as lists; a protobuf message is
copied into a message field; two layers writing one top (not in place) is an error.
"""
import collections

from google.protobuf import message as _message

from netspec import caffe_pb2

__all__ = ["Top", "Function", "NetSpec", "Layers", "Parameters", "layers", "params", "to_proto", "assign_proto"]


def param_name_dict():
    """{layer type: '<name>_param'} from LayerParameter's *_param fields (ConvolutionParameter -> Convolution)."""
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                names[type_name[:-len("Parameter")]] = field.name
    # layer types that read another type's message (layer_factory: Deconvolution reads convolution_param)
    names.update(Deconvolution="convolution_param", Im2col="convolution_param")
    return names


_PARAM_NAMES = param_name_dict()


def _type_params(type_name):
    """The *_param fields a keyword argument of this layer type may go to, in order of preference."""
    fields = [_PARAM_NAMES[type_name]] if type_name in _PARAM_NAMES else []
    if type_name.endswith("Loss"):
        fields.append("loss_param")
    return fields


def assign_proto(proto, name, value, where=None):
    """Assign a Python value to field `name` of message `proto`, recursively.

    dict -> message, list/tuple -> repeated field (dicts in it -> added messages), a single value for a
    repeated field -> one element, a str for an enum field -> the value of that name. `where` names the
    field for error messages (default: the message's type and the field).
    """
    where = where or f"{proto.DESCRIPTOR.name}.{name}"
    field = proto.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise ValueError(f"{where}: {proto.DESCRIPTOR.name} has no field '{name}' "
                         f"(fields: {', '.join(sorted(proto.DESCRIPTOR.fields_by_name))})")
    repeated = field.is_repeated
    is_message = field.message_type is not None
    if repeated:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        container = getattr(proto, name)
        for i, item in enumerate(values):
            if is_message:
                _assign_message(container.add(), item, f"{where}[{i}]")
            else:
                _checked(container.append, _scalar(field, item, f"{where}[{i}]"), f"{where}[{i}]")
    elif is_message:
        _assign_message(getattr(proto, name), value, where)
    else:
        _checked(lambda v: setattr(proto, name, v), _scalar(field, value, where), where)


def _checked(assign, value, where):
    """protobuf's own type and range errors, prefixed with the field they concern."""
    try:
        assign(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from None


def _assign_message(msg, value, where):
    if isinstance(value, _message.Message):
        if value.DESCRIPTOR is not msg.DESCRIPTOR:
            raise TypeError(f"{where}: expected a {msg.DESCRIPTOR.name} or a dict, got a {value.DESCRIPTOR.name}")
        msg.CopyFrom(value)
        return
    if not isinstance(value, dict):
        raise TypeError(f"{where}: is a {msg.DESCRIPTOR.name} message; give it a dict of its fields, "
                        f"not {type(value).__name__} {value!r}")
    for key, item in value.items():
        assign_proto(msg, key, item, f"{where}.{key}")


def _scalar(field, value, where):
    """Check one scalar value (enum names become numbers) before protobuf sees it."""
    if isinstance(value, (dict, list, tuple)):
        raise TypeError(f"{where}: takes a single value, got {type(value).__name__} {value!r}")
    if field.enum_type is not None and isinstance(value, str):
        try:
            return field.enum_type.values_by_name[value].number
        except KeyError:
            raise ValueError(f"{where}: {value!r} is not a {field.enum_type.name} "
                             f"(values: {', '.join(field.enum_type.values_by_name)})") from None
    return value


class Top:
    """One output blob of a layer (a Function); `n` is its index among the layer's tops."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n
        self.spec_name = None        # the last NetSpec attribute it was assigned to (for messages only)

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)

    def _update(self, params):
        self.fn._update(params)

    def describe(self):
        """How error messages name this top: its NetSpec name, else its layer type and index."""
        if self.spec_name:
            return f"'{self.spec_name}'"
        index = f" {self.n}" if self.fn.ntop > 1 else ""
        return f"an unnamed {self.fn.type_name} top{index}"

    def __repr__(self):
        return f"<Top {self.describe()} of {self.fn.type_name}>"


class Function:
    """One layer: its type, its bottoms (Tops) and its parameters (the keyword arguments)."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for i, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):          # pycaffe's words, which its users' code may match
                raise TypeError(f"{type_name} input {i} is not a Top (type is {type(bottom)})")
        self.inputs = tuple(inputs)
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if not isinstance(self.ntop, int) or self.ntop < 0:
            raise ValueError(f"L.{type_name}: ntop must be a non-negative int, got {self.ntop!r}")
        if self.in_place and len(self.inputs) != self.ntop:
            raise ValueError(f"L.{type_name}: in_place needs as many bottoms as tops, got {len(self.inputs)} "
                             f"bottom(s) and ntop={self.ntop}")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))
        self.layer_param()               # fail here, at the user's line, on a bad keyword argument

    def layer_param(self):
        """A LayerParameter with this layer's type and parameters (no name, bottoms or tops yet)."""
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        for key, value in self.params.items():
            where = f"L.{self.type_name}({key}=...)"
            if key.endswith("param"):            # Caffe's rule: param=, convolution_param=, ... are layer fields
                assign_proto(layer, key, value, where)
                continue
            for field in _type_params(self.type_name):
                if key in getattr(layer, field).DESCRIPTOR.fields_by_name:
                    assign_proto(getattr(layer, field), key, value, f"{where}: {field}.{key}")
                    break
            else:
                if key not in layer.DESCRIPTOR.fields_by_name:
                    known = " or ".join(_type_params(self.type_name) + ["LayerParameter"])
                    raise ValueError(f"{where}: '{key}' is not a field of {known}; check the spelling, or pass "
                                     f"the message explicitly (e.g. convolution_param=dict({key}=...))")
                assign_proto(layer, key, value, f"{where}: LayerParameter.{key}")
        return layer

    def _update(self, params):
        self.params.update(params)
        self.layer_param()

    def _get_name(self, names, autonames):
        if self not in names:
            if self.ntop > 0:
                names[self] = self._get_top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottom_names.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name, bottom=bottom_names)
        if self.in_place:
            layer.top.extend(bottom_names)
        else:
            layer.top.extend(self._get_top_name(top, names, autonames) for top in self.tops)
        layer.name = self._get_name(names, autonames)
        layer.MergeFrom(self.layer_param())     # explicit keyword arguments (name=, ...) win, as in Caffe
        layers[self] = layer

    def __repr__(self):
        return f"<Function {self.type_name} ({len(self.inputs)} bottom(s), {self.ntop} top(s))>"


def _net(layers):
    """The NetParameter of the collected layers, refusing a blob written by two layers (not in place)."""
    written = {}
    for layer in layers.values():
        for top in layer.top:
            if top in written and top not in layer.bottom:
                raise ValueError(f"NetSpec: layers {written[top]} and '{layer.name}' ({layer.type}) both write top "
                                 f"'{top}'; give one of them another name")
            written.setdefault(top, f"'{layer.name}' ({layer.type})")
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


def to_proto(*tops):
    """A NetParameter with every layer needed to compute `tops`, with automatic names."""
    layers = collections.OrderedDict()
    autonames = collections.Counter()
    names = {}
    for top in tops:
        top._to_proto(layers, names, autonames)
    return _net(layers)


class MissingTopError(AttributeError, KeyError):
    """A NetSpec attribute that names no top: an AttributeError (hasattr works), and the KeyError pycaffe raises."""

    def __str__(self):                           # KeyError would quote the message
        return str(self.args[0])


class NetSpec:
    """A set of named Tops: assign them as attributes (or items); to_proto() writes every layer they need,
    in assignment order, each named after the attribute its top was assigned to."""

    def __init__(self):
        super().__setattr__("tops", collections.OrderedDict())

    def __setattr__(self, name, value):
        if not isinstance(value, (Top, Function)):
            hint = (" (a layer with several tops returns a tuple: unpack it, n.a, n.b = L.X(..., ntop=2))"
                    if isinstance(value, tuple) else "")
            raise TypeError(f"NetSpec.{name} must be a Top (a layer's output), got {type(value).__name__}{hint}")
        if isinstance(value, Top):
            value.spec_name = name
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise MissingTopError(f"NetSpec has no top '{name}' (tops: {', '.join(self.tops) or 'none'})") \
                from None

    def __setitem__(self, name, value):
        self.__setattr__(name, value)

    def __getitem__(self, name):
        return self.tops[name]

    def __delitem__(self, name):
        del self.tops[name]

    def __contains__(self, name):
        return name in self.tops

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def update(self, name, params):
        """Add or change keyword arguments of the layer that makes top `name`."""
        self.tops[name]._update(params)

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        autonames = collections.Counter()
        layers = collections.OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        return _net(layers)


class Layers:
    """The `L` pseudo-module: `L.Convolution(bottom, ...)` specifies a layer of type "Convolution"."""

    def __getattr__(self, type_name):
        if type_name.startswith("_"):            # keep copy/pickle/introspection from making layers
            raise AttributeError(type_name)

        def layer_fn(*bottoms, **kwargs):
            fn = Function(type_name, bottoms, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        layer_fn.__name__ = type_name
        return layer_fn


class Parameters:
    """The `P` pseudo-module: `P.Pooling.MAX` is PoolingParameter.MAX, `P.Eltwise.SUM` is EltwiseParameter.SUM."""

    def __getattr__(self, type_name):
        if type_name.startswith("_"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, type_name + "Parameter", None)
        if message is None:
            raise AttributeError(f"caffe_pb2 has no {type_name}Parameter (P.{type_name})")
        return _EnumValues(message)


class _EnumValues:
    def __init__(self, message):
        self._message = message

    def __getattr__(self, value_name):
        if value_name.startswith("_"):
            raise AttributeError(value_name)
        try:
            return getattr(self._message, value_name)
        except AttributeError:
            enums = {v.name for e in self._message.DESCRIPTOR.enum_types for v in e.values}
            raise AttributeError(f"{self._message.DESCRIPTOR.name} has no value {value_name} "
                                 f"(values: {', '.join(sorted(enums)) or 'none'})") from None


layers = Layers()
params = Parameters()

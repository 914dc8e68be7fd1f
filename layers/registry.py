"""The layer registry, keyed by Caffe's type string (cf. caffe/layer_factory.hpp)."""
_REGISTRY = {}


def register(type_name):
    """Class decorator: `@register("Crop")` makes `type: "Crop"` build that class. Duplicates are an error."""
    def decorate(cls):
        if type_name in _REGISTRY:
            raise ValueError(f"layer type {type_name!r} is registered twice "
                             f"({_REGISTRY[type_name].__module__} and {cls.__module__})")
        _REGISTRY[type_name] = cls
        cls.type = type_name
        return cls
    return decorate


def known_types():
    return sorted(_REGISTRY)


def layer_class(type_name, layer_name="?"):
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise ValueError(f"layer '{layer_name}': unknown layer type {type_name!r} "
                         f"(known types: {', '.join(known_types())})") from None


def create_layer(layer_param, phase="TEST"):
    """Instantiate the layer a LayerParameter describes."""
    return layer_class(layer_param.type, layer_param.name)(layer_param, phase)

"""caffe.draw: a picture of a NetParameter, through pydot and Graphviz (cf. python/caffe/draw.py).

Layers are boxes (in-place neuron layers green, Convolution/Deconvolution red, Pooling orange, InnerProduct
purple), blobs octagons, edges run bottom -> layer -> top, and a layer's top edges are labelled with its output
count. pydot is an optional extra (pip install fcn-caffe[draw]); it is imported when a graph is first made, so
`import caffe.draw` works without it. Rendering (draw_net, draw_net_to_file) also needs Graphviz's `dot`.
"""
from netspec import caffe_pb2

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
LAYER_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                "InnerProduct": "#CC33FF"}


def _pydot():
    try:
        import pydot
    except ImportError:
        try:
            import pydotplus as pydot       # pycaffe's first choice, where it is installed
        except ImportError:
            raise ImportError("caffe.draw needs pydot: pip install fcn-caffe[draw] (drawing to a file or image "
                              "also needs Graphviz's `dot` program)") from None
    return pydot


def get_pooling_types_dict():
    """{PoolMethod number: name}: {0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}."""
    return {v.number: name for name, v in caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer):
    """The label of a layer's top edges: its batch size (Data) or output count (Convolution, InnerProduct)."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weight lr_mult, bias lr_mult) of a Convolution, Deconvolution or InnerProduct layer; 1.0 where unset."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    if len(layer.param) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    mults = [p.lr_mult for p in layer.param] + [1.0] * (2 - len(layer.param))
    return tuple(mults)


def get_layer_label(layer, rankdir, display_lrm=False):
    """A layer's node label: name, (type), kernel/stride/pad for spatial layers, lr mults if asked; on separate
    lines for a left-right graph, on one line for a top-bottom one."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    if layer.type == "Pooling":
        kind = f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})"
    else:
        kind = f"({layer.type})"
    parts = [layer.name, kind]
    if layer.type == "Pooling":
        p = layer.pooling_param
        parts.append(separator.join([f"kernel size: {p.kernel_size}", f"stride: {p.stride}", f"pad: {p.pad}"]))
    elif layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        first = (lambda values, default: values[0] if len(values) else default)
        parts.append(separator.join([f"kernel size: {first(p.kernel_size, 1)}", f"stride: {first(p.stride, 1)}",
                                     f"pad: {first(p.pad, 0)}"]))
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        weight_mult, bias_mult = get_layer_lr_mult(layer)
        if weight_mult or bias_mult:
            parts.append(f"lr mult: {weight_mult:.1f}, {bias_mult:.1f}")
    return '"%s"' % separator.join(parts)        # quoted, or Graphviz misreads the colons


def choose_color_by_layertype(layertype):
    return LAYER_COLORS.get(layertype, LAYER_STYLE_DEFAULT["fillcolor"])


def _in_phase(layer, phase):
    """Whether the layer runs in `phase` by its include/exclude phase rules (None: every layer)."""
    if phase is None:
        return True
    if layer.include and layer.exclude:
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not layer.include or any(rule.phase == phase for rule in layer.include)
    return included and not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot.Dot of the net (a NetParameter) laid out in direction rankdir ('LR', 'TB', 'BT')."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _in_phase(layer, phase):
            continue
        node = f"{layer.name}_{layer.type}"
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node] = pydot.Node(label, **NEURON_LAYER_STYLE)         # an in-place neuron layer
        else:
            nodes[node] = pydot.Node(label, **dict(LAYER_STYLE_DEFAULT,
                                                   fillcolor=choose_color_by_layertype(layer.type)))
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", node, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top)
            edges.append((node, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The picture of the net as bytes in format `ext` (png, svg, pdf, ...; 'raw' for Graphviz's input)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the picture to filename, in the format its extension names."""
    ext = filename[filename.rfind(".") + 1:]
    with open(filename, "wb") as f:
        f.write(draw_net(caffe_net, rankdir, ext, phase, display_lrm))

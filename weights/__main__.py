"""python -m weights: inspect and convert Caffe weights, and do FCN's net surgery.

Every verb prints what it did, layer by layer. Bad input (a damaged file, shapes that do not fit) ends with
a one-line `error: ...` naming the file, layer and shapes, and exit status 2.
"""
import argparse
import sys

import numpy as np

from netspec import io
from weights import caffemodel, surgery

EPILOG = """\
verbs (each has its own --help):
  info FILE                         list layers, types and param shapes; say which format the file is in
  convert IN OUT                    .caffemodel <-> .caffemodel.h5 (by OUT's suffix), also V1 -> V2 binary
  check NET WEIGHTS                 load WEIGHTS into the net as Caffe would; report what fits and what not
  convolutionalize WEIGHTS OUT      classifier -> FCN starting weights (fc layers become convolutions)
  transplant NET OUT SOURCE...      copy params by layer name wherever the counts agree (reshaping)
  interp NET WEIGHTS OUT            set Deconvolution layers to bilinear upsampling
  handoff NET SOURCE OUT            start the next FCN stage (16s from 32s, 8s from 16s)

NET is a prototxt that this engine can build (a deploy net with an Input layer); its batch is set to 1.
OUT ending in .h5 is written in Caffe's HDF5 layout, anything else as a binary .caffemodel.

examples:
  python -m weights info VGG_ILSVRC_16_layers.caffemodel
  python -m weights convert lenet_iter_10000.caffemodel lenet.caffemodel.h5
  python -m weights convolutionalize VGG_ILSVRC_16_layers.caffemodel vgg16-fcn.caffemodel \\
      --classifier VGG_ILSVRC_16_layers_deploy.prototxt
  python -m weights handoff voc-fcn16s/deploy.prototxt voc-fcn32s.caffemodel fcn16s-init.caffemodel
"""


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except (ValueError, OSError) as error:      # CaffeFormatError is a ValueError
        print(f"error: {caffemodel.describe_error(error)}", file=sys.stderr)
        return 2
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m weights", description="Inspect and convert Caffe weights; FCN net surgery.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(title="verbs", metavar="VERB")

    p = verbs.add_parser("info", help="list layers, types and param shapes, and the file's format",
                         description="List every layer of a .caffemodel (V0/V1/V2 binary), .caffemodel.h5 or "
                                     ".solverstate[.h5]: its type where the file says it, and its param shapes "
                                     "(legacy 4-D shapes shown with the shape Caffe loads them as).")
    p.add_argument("file")
    p.add_argument("--net", help="a net prototxt giving the types (and order) an HDF5 file lacks")
    p.set_defaults(run=cmd_info)

    p = verbs.add_parser("convert", help="convert between .caffemodel and .caffemodel.h5",
                         description="Convert weights between binary .caffemodel and Caffe's HDF5 layout "
                                     "(.caffemodel.h5), by OUT's suffix; V0/V1 files come out as V2 `layer` "
                                     "entries. Values are copied bit for bit (float32 and double); legacy "
                                     "4-D shapes become the shapes Caffe loads them as. A .solverstate converts "
                                     "to .solverstate.h5 and back.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--net", help="a net prototxt: types and layer order for an HDF5 input")
    p.add_argument("--float32", action="store_true", help="store double (float64) blobs as float32")
    p.add_argument("--weights", help="for a solver state: the weights of its net, to normalize history shapes")
    p.set_defaults(run=cmd_convert)

    p = verbs.add_parser("check", help="load weights into a net as Caffe does and report the fit",
                         description="Copy WEIGHTS into NET by layer name (Caffe's CopyTrainedLayersFrom) and "
                                     "list the layers loaded, the net's layers the file lacks (they keep their "
                                     "filler values: all zero in FCN nets) and the file's layers the net ignores.")
    p.add_argument("net")
    p.add_argument("weights")
    p.set_defaults(run=cmd_check)

    p = verbs.add_parser("convolutionalize", help="classifier weights -> FCN starting weights",
                         description="Turn a classifier's InnerProduct layers into Convolutions whose kernel "
                                     "covers the layer's input (VGG16 fc6 4096x25088 -> 4096x512x7x7, fc7 -> "
                                     "4096x4096x1x1) and drop the final classifier, giving e.g. the "
                                     "vgg16-fcn.caffemodel the FCN solvers start from. Kernel shapes come from "
                                     "--fc, else the FCN net (--fcn), else the classifier's geometry "
                                     "(--classifier: the C x H x W of each fc layer's input).")
    p.add_argument("weights", help="the classifier's .caffemodel or .caffemodel.h5")
    p.add_argument("output")
    p.add_argument("--classifier", help="the classifier's deploy prototxt")
    p.add_argument("--fcn", help="the FCN net prototxt; layers it lacks are dropped")
    p.add_argument("--fc", action="append", default=[], metavar="NAME=CxHxW",
                   help="the input shape of fc layer NAME, e.g. fc6=512x7x7 (repeatable)")
    p.add_argument("--drop", action="append", metavar="NAME",
                   help="drop this layer (repeatable; default without --fcn: the last InnerProduct layer)")
    p.set_defaults(run=cmd_convolutionalize)

    p = verbs.add_parser("transplant", help="copy params by layer name where the counts agree",
                         description="Build NET (with --base weights, if given), copy into it every param of "
                                     "each SOURCE (.caffemodel/.h5) whose layer name (+ suffix) it has and whose "
                                     "element count agrees, reshaping as needed, and save it to OUT. This is "
                                     "FCN's surgery.transplant; --suffix pairs with the sources in order (one "
                                     "suffix applies to all), as NYUD color-hha's 'color' and 'hha'.")
    p.add_argument("net")
    p.add_argument("output")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--suffix", action="append", default=[], help="layer name suffix in NET (repeatable)")
    p.add_argument("--base", help="weights loaded into NET before transplanting")
    p.add_argument("--interp", action="store_true",
                   help="then set the Deconvolution layers named *up* to bilinear, as FCN's solve.py does")
    p.set_defaults(run=cmd_transplant)

    p = verbs.add_parser("interp", help="set Deconvolution layers to bilinear upsampling",
                         description="Load WEIGHTS into NET, set Deconvolution weights to bilinear upsampling "
                                     "on the channel diagonal (FCN's surgery.interp), save to OUT. Default "
                                     "layers: Deconvolution layers whose name contains 'up'.")
    p.add_argument("net")
    p.add_argument("weights", help="weights to load first ('-' for none: the net's fillers)")
    p.add_argument("output")
    p.add_argument("--layer", action="append", metavar="NAME", help="a layer to set (repeatable)")
    p.set_defaults(run=cmd_interp)

    p = verbs.add_parser("handoff", help="initialise the next FCN stage from the previous one",
                         description="Initialise NET (e.g. FCN-16s) from SOURCE (an FCN-32s snapshot): params "
                                     "copied by name with Caffe's shape check, the new skip score layers set "
                                     "to zero and the new Deconvolution layers to bilinear, so that the skips "
                                     "add nothing until trained. Saves to OUT.")
    p.add_argument("net")
    p.add_argument("source")
    p.add_argument("output")
    p.set_defaults(run=cmd_handoff)
    return parser


# ---- verbs ------------------------------------------------------------------------------------

def cmd_info(args):
    if caffemodel.is_solverstate(args.file):
        _info_solverstate(args.file)
        return
    weights = caffemodel.load(args.file, net=args.net, normalize=False)
    param = weights.param
    layout = {caffemodel.V0_BINARY: "NetParameter.layers with V0 layer definitions",
              caffemodel.V1_BINARY: "NetParameter.layers, V1LayerParameter",
              caffemodel.V2_BINARY: "NetParameter.layer, LayerParameter",
              caffemodel.HDF5: "data/<layer>/<blob index>; no layer types or order"}[weights.format]
    print(f"{args.file}: {weights.format} ({layout})" + (f", net '{param.name}'" if param.name else ""))
    rows = [(layer.name, layer.type or "?", _param_text(layer)) for layer in param.layer]
    width = max([len(r[0]) for r in rows] + [5])
    type_width = max([len(r[1]) for r in rows] + [4])
    print(f"  {'layer':{width}s}  {'type':{type_width}s}  params")
    for name, kind, params in rows:
        print(f"  {name:{width}s}  {kind:{type_width}s}  {params}")
    blobs = [b for layer in param.layer for b in layer.blobs]
    values = sum(int(np.prod(io.blob_shape(b))) for b in blobs)
    dtypes = sorted({"float64" if len(b.double_data) else "float32" for b in blobs})
    print(f"{len(weights.layers_with_params())} of {len(param.layer)} layers hold params: {len(blobs)} blobs, "
          f"{values:,} values ({', '.join(dtypes) or 'none'})")
    if any(caffemodel.is_legacy(b) for b in blobs):
        print("legacy 4-D blob shapes: `convert` writes them in the shape shown after '->' "
              "(what Caffe loads them as)")
    caffemodel.check_values(param, args.file)
    if weights.format == caffemodel.HDF5 and not args.net:
        print("types are unknown in HDF5 weights; pass --net PROTOTXT to take them from the net")


def _param_text(layer):
    parts = []
    for i, blob in enumerate(layer.blobs):
        text = surgery.dims(io.blob_shape(blob))
        if caffemodel.is_legacy(blob):
            shape = caffemodel.caffe_shape(layer.type, i, blob)
            if shape is None:
                text += " (legacy; kept)"
            else:
                text += " (legacy)" if tuple(shape) == io.blob_shape(blob) else f" (legacy -> {surgery.dims(shape)})"
        if len(blob.double_data):
            text += " float64"
        if len(blob.diff) or len(blob.double_diff):
            text += " +diff"
        if not (len(blob.data) or len(blob.double_data)) and int(np.prod(io.blob_shape(blob))):
            text = "(shared; saved with its owner)"
        held, need = caffemodel.values_held(blob)
        if held and held != need:
            text += f" DAMAGED: {held:,} of {need:,} values"
        parts.append(text)
    return ", ".join(parts) or "-"


def _info_solverstate(path):
    state = io.read_solverstate(path)
    fmt = "HDF5" if path.endswith(".h5") else "binary"
    print(f"{path}: {fmt} SolverState: iter {state.iter}, current_step {state.current_step}, "
          f"learned_net {state.learned_net!r}")
    for i, blob in enumerate(state.history):
        legacy = " (legacy)" if caffemodel.is_legacy(blob) else ""
        print(f"  history {i}: {surgery.dims(io.blob_shape(blob))}{legacy}")


def cmd_convert(args):
    if caffemodel.is_solverstate(args.input):
        if not caffemodel.is_solverstate(args.output):
            raise ValueError(f"{args.input} is a solver state: name the output *.solverstate or *.solverstate.h5")
        state, changes = caffemodel.load_solverstate(args.input, weights=args.weights)
        caffemodel.save_solverstate(state, args.output)
        for k, stored, shape in changes:
            print(f"history {k}: {surgery.dims(stored)} -> {surgery.dims(shape)}")
        if args.output.endswith(".h5") and not args.weights and any(caffemodel.is_legacy(b) for b in state.history):
            print("note: history blobs keep legacy 4-D shapes; Caffe's HDF5 restore needs the params' shapes: "
                  "pass --weights with the net's caffemodel")
        print(f"wrote {args.output}: iter {state.iter}, {len(state.history)} history blobs")
        return
    if caffemodel.is_solverstate(args.output):
        raise ValueError(f"{args.input} holds weights (a net), not a solver state: an output named {args.output} "
                         f"would be a .caffemodel under a .solverstate name; name it *.caffemodel or *.caffemodel.h5")
    weights = caffemodel.convert(args.input, args.output, net=args.net, float32=args.float32)
    print(f"read {args.input} ({weights.format}): {len(weights.layers_with_params())} layers with params")
    for name, i, stored, shape in weights.reshaped:
        if tuple(stored) != tuple(shape):
            print(f"  {name}[{i}]: {surgery.dims(stored)} -> {surgery.dims(shape)}")
    for name, i, stored, kind in weights.kept_legacy:
        print(f"  {name}[{i}]: kept {surgery.dims(stored)} (legacy shape; layer type {kind or 'unknown'})")
    untyped = [l.name for l in weights.layers_with_params() if not l.type]
    if untyped and not args.output.endswith(".h5"):
        print(f"  no types for {', '.join(untyped)} (HDF5 input): Caffe matches by name, so they load; "
              f"--net PROTOTXT fills them in")
    kind = caffemodel.HDF5 if args.output.endswith(".h5") else caffemodel.V2_BINARY
    print(f"wrote {args.output} ({kind})")


def cmd_check(args):
    net = surgery.load_net(args.net)
    weights = caffemodel.load(args.weights, net=args.net)
    net.copy_from_proto(weights.param, origin=args.weights)
    in_file = {l.name for l in weights.layers_with_params()}
    for name, blobs in net.params.items():
        shapes = ", ".join(surgery.dims(b.shape) for b in blobs)
        state = "loaded" if name in in_file else "MISSING (keeps its filler values)"
        print(f"  {name}: {shapes}  {state}")
    ignored = sorted(in_file - set(net.params))
    if ignored:
        print(f"ignored (not in the net): {', '.join(ignored)}")
    missing = [name for name in net.params if name not in in_file]
    print(f"{len(net.params) - len(missing)} of {len(net.params)} param layers loaded from {args.weights}"
          + (f"; {len(missing)} missing" if missing else ""))


def cmd_convolutionalize(args):
    shapes = {}
    for item in args.fc:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shapes[name] = ()
        if not name or len(shapes[name]) != 3:
            raise ValueError(f"--fc {item!r}: expected NAME=CxHxW, e.g. fc6=512x7x7")
    param, report = surgery.convolutionalize(args.weights, classifier=args.classifier, fcn=args.fcn,
                                             fc_shapes=shapes, drop=args.drop)
    caffemodel.save(param, args.output)
    print(report)
    print(f"wrote {args.output}: {len(param.layer)} layers with params")


def cmd_transplant(args):
    suffixes = args.suffix or [""]
    if len(suffixes) == 1:
        suffixes = suffixes * len(args.sources)
    if len(suffixes) != len(args.sources):
        raise ValueError(f"{len(args.sources)} sources but {len(args.suffix)} --suffix values; give one for all "
                         f"or one per source")
    net = surgery.load_net(args.net, weights=args.base)
    for source, suffix in zip(args.sources, suffixes):
        report = surgery.transplant(net, source, suffix=suffix)
        print(f"from {source}" + (f" (suffix {suffix!r})" if suffix else "") + ":")
        print(_indent(report))
    if args.interp:
        print(f"bilinear: {', '.join(surgery.interp(net)) or 'no Deconvolution layer named *up*'}")
    net.save(args.output)
    print(f"wrote {args.output}")


def cmd_interp(args):
    net = surgery.load_net(args.net, weights=None if args.weights == "-" else args.weights)
    names = surgery.interp(net, args.layer)
    print(f"bilinear: {', '.join(names) or 'no Deconvolution layer named *up*'}")
    net.save(args.output)
    print(f"wrote {args.output}")


def cmd_handoff(args):
    net = surgery.load_net(args.net)
    report = surgery.handoff(net, args.source)
    print(report)
    net.save(args.output)
    print(f"wrote {args.output}")


def _indent(text):
    return "\n".join("  " + line for line in str(text).splitlines())


if __name__ == "__main__":
    sys.exit(main())

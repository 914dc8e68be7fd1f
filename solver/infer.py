"""Inference with a deploy net on images of any size (cf. the FCN reference infer.py).

  python -m solver.infer DEPLOY.prototxt WEIGHTS IMAGE... [--out DIR] [--overwrite] [--mean B,G,R] [--gpu N]
                         [--layer score] [--max-pixels N]

Each image is read as RGB, turned into Caffe's input (float32, BGR, minus the mean, 1 x 3 x H x W), the net is
reshaped to it and run, and the argmax over the score blob's channels is the label. For IMAGE it writes
DIR/{name}.png (the label: a palette PNG whose pixel values are the class indices, VOC colours; 16-bit
grayscale beyond 256 classes) and DIR/{name}_overlay.jpg (the colours blended over the image where the label is
not background), and prints the time each image took. DIR defaults to infer_out.

{name} is the image's name without its extension; inputs that share it with other extensions (a.png and a.jpg)
get their extension added (a_png, a_jpg), then a number where that is not enough (x/a.png, y/a.png: a, a_2), and a
name whose output would be an input file is numbered too: no output is ever written over an input or another
output. Outputs that exist already are refused before anything runs, unless --overwrite is given. Every output is
written to a temporary file and renamed into place. Bad input ends with one `error: ...` line naming the file,
exit status 2 (130 on Ctrl-C), keeping the outputs of the images done before it.
"""
import argparse
import collections
import os
import sys
import time

import numpy
from PIL import Image

from layers import backend
from layers.image_io import open_image, read_rgb
from solver import cli
from solver.palette import label_image, overlay, voc_palette

VOC_MEAN = (104.00698793, 116.66876762, 122.67891434)


def parse_mean(text):
    try:
        mean = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"--mean must be three numbers B,G,R, got {text!r}") from None
    if len(mean) != 3:
        raise ValueError(f"--mean must be three numbers B,G,R, got {text!r}")
    return mean


def load_image(path, max_pixels=None):
    """An image file as H x W x 3 uint8 RGB (grey and palette images are converted, 16-bit samples keep their
    high byte); layers.image_io.ImageError naming the file when it cannot be read."""
    return read_rgb(path, max_pixels, "give --max-pixels {pixels} to read it")


def preprocess(rgb, mean=VOC_MEAN):
    """H x W x 3 RGB -> 3 x H x W float32: BGR, minus the BGR mean (values 0-255, as Caffe's VGG expects)."""
    in_ = numpy.array(rgb, dtype=numpy.float32)[:, :, ::-1]
    in_ -= numpy.array(mean)
    return numpy.ascontiguousarray(in_.transpose(2, 0, 1))


def score_blob(net, layer=None):
    """The blob to take the argmax of: `layer`, else 'score', else the net's only output."""
    if layer:
        if layer not in net.blobs:
            raise ValueError(f"net '{net.name}' has no blob '{layer}' (outputs: {', '.join(net.outputs)})")
        return layer
    if "score" in net.blobs:
        return "score"
    if len(net.outputs) == 1:
        return net.outputs[0]
    raise ValueError(f"net '{net.name}' has no 'score' blob and several outputs ({', '.join(net.outputs)}): "
                     f"name the score blob")


def first_input_shape(param, size):
    """{input blob: 1 x C x H x W} for the first Input layer of NetParameter `param`, at an image's (W, H) `size`,
    so that a deploy net is built at the size it will run at, not its declared one; {} for other inputs."""
    for lp in param.layer:
        if lp.type == "Input" and lp.top and lp.input_param.shape:
            dims = list(lp.input_param.shape[0].dim)
            if len(dims) == 4:
                return {lp.top[0]: (1, dims[1], size[1], size[0])}
            return {}
    return {}


def deploy_net(definition, weights, device, image, size):
    """The deploy net `definition` (a path or NetParameter) built at the (W, H) `size` of `image`, not at its
    declared input size, then given `weights`. A layer that cannot take that size raises an error naming the image."""
    from layers import Net
    from netspec.errors import CaffeFormatError
    from netspec.io import read_net
    shapes = first_input_shape(read_net(definition), size)
    try:
        net = Net(definition, phase="TEST", device=device, input_shapes=shapes)
    except (ValueError, MemoryError) as e:              # a layer that does not fit this image, not the net itself
        if not shapes or isinstance(e, CaffeFormatError):
            raise
        raise cli.prefixed(e, f"{image} ({size[0]} x {size[1]})") from None
    net.copy_from(weights)
    return net


def input_blob(net, input_name=None):
    if input_name:
        return input_name
    if not net.inputs:
        raise ValueError(f"net '{net.name}' has no Input layer: use a deploy prototxt (input 'data' 1x3xHxW)")
    return net.inputs[0]


def infer(net, rgb, mean=VOC_MEAN, layer=None, input_name=None):
    """Run a deploy net on one H x W x 3 RGB image; returns (H' x W' class indices, seconds taken)."""
    name = input_blob(net, input_name)
    channels = net.blobs[name].channels if net.blobs[name].ndim > 1 else None
    if channels not in (None, 3):
        raise ValueError(f"the net's input '{name}' has {channels} channels; infer feeds 3-channel images")
    layer = score_blob(net, layer)
    in_ = preprocess(rgb, mean)
    start = time.perf_counter()
    net.forward(blobs=[layer], **{name: in_[numpy.newaxis]})      # asked for: kept even when blobs are released
    label = backend.to_cpu(net.blobs[layer].data[0].argmax(0))      # to_cpu waits for the GPU
    return numpy.asarray(label), time.perf_counter() - start


def output_names(paths, out, inputs=()):
    """Collision-free output names, one per path: the name without extension; a name shared by paths of several
    extensions gets the extension added (a.png, a.jpg -> a_png, a_jpg), then _2, _3, ... in order where that is
    not enough (x/a.png, y/a.png -> a, a_2), or where out/{name}.png or out/{name}_overlay.jpg would be one of
    `inputs`. Case is ignored in comparing."""
    stems = [os.path.splitext(os.path.basename(p)) for p in paths]
    exts = collections.defaultdict(set)                   # the extensions of each shared name
    for stem, ext in stems:
        exts[stem.casefold()].add(ext.casefold())
    wanted = [stem if len(exts[stem.casefold()]) == 1 else f"{stem}_{ext.lstrip('.')}" for stem, ext in stems]
    taken = {cli.identity(p) for p in inputs}
    names, used = [], set()
    for name in wanted:
        candidate, k = name, 1
        while candidate.casefold() in used or any(
                cli.identity(os.path.join(out, candidate + suffix)) in taken for suffix in (".png", "_overlay.jpg")):
            k += 1
            candidate = f"{name}_{k}"
        used.add(candidate.casefold())
        names.append(candidate)
    return names


def main(argv=None):
    """The command line; returns [(image, label path, overlay path or None, seconds)]. Errors raise (the command
    reports them through solver.cli.run)."""
    parser = argparse.ArgumentParser(prog="python -m solver.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("deploy", help="deploy prototxt (an Input layer feeding the net)")
    parser.add_argument("weights", help=".caffemodel or .caffemodel.h5")
    parser.add_argument("images", nargs="+", help="image files, any size")
    parser.add_argument("--out", default="infer_out", help="output folder (default: infer_out)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs that exist already (default: refuse them; inputs are never replaced)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="largest image to read, in pixels (default: Pillow's decompression-bomb limit, "
                             "89478485)")
    parser.add_argument("--mean", default=",".join(map(str, VOC_MEAN)), help="BGR mean (default: VOC's)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: CPU)")
    parser.add_argument("--layer", default=None, help="score blob (default: 'score' or the only output)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    dense = parser.add_mutually_exclusive_group()
    dense.add_argument("--shift-and-stitch", metavar="BLOB", help="label from BLOB (a coarse score, e.g. score_fr) "
                       "made dense by shift-and-stitch: f x f shifted inputs (solver/shift_stitch.py)")
    dense.add_argument("--rarefy", metavar="BLOB", help="label from BLOB made dense by the rarefied net, computed "
                       "once (netspec/rarefy.py)")
    args = parser.parse_args(argv)
    try:
        mean = parse_mean(args.mean)
    except ValueError as e:
        parser.error(str(e))
    if not 0 <= args.alpha <= 1:
        parser.error(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.max_pixels is not None and args.max_pixels < 1:
        parser.error(f"--max-pixels must be positive, got {args.max_pixels}")

    # everything that can be checked is checked before the net is built: the files, every image's header, the
    # output names; no output is replaced unless asked, and no input ever
    cli.require_file(args.deploy, "deploy net")
    cli.require_file(args.weights, "weights")
    images = list({cli.identity(p): p for p in reversed(args.images)}.values())[::-1]   # a file given twice: once
    sizes = []
    for path in images:
        with open_image(path, args.max_pixels, "give --max-pixels {pixels} to read it") as im:
            sizes.append(im.size)
    names = output_names(images, args.out, images)
    outputs = [(os.path.join(args.out, f"{n}.png"), os.path.join(args.out, f"{n}_overlay.jpg")) for n in names]
    cli.output_folder(args.out, "--out")
    cli.refuse_existing([p for pair in outputs for p in pair], images, args.overwrite)

    dense = args.shift_and_stitch or args.rarefy          # a coarse blob to make dense (solver/shift_stitch.py)
    if dense:
        from netspec.rarefy import input_map, rarefy
        from solver.shift_stitch import infer_dense
        offset = input_map(args.deploy, dense)[1]
    definition = rarefy(args.deploy, dense) if args.rarefy else args.deploy
    net = deploy_net(definition, args.weights, args.gpu, images[0], sizes[0])
    net.release_blobs = True            # free activations no later layer reads: inference needs a fraction
    layer = score_blob(net, dense or args.layer)
    n_cl = net.blobs[layer].channels
    palette = voc_palette(max(n_cl, 256))
    results = []
    try:
        for path, (label_path, overlay_path) in zip(images, outputs):
            rgb = load_image(path, args.max_pixels)
            try:
                label, seconds = (infer_dense(net, rgb, mean, layer, offset, shifted=bool(args.shift_and_stitch))
                                  if dense else infer(net, rgb, mean, layer))
            except (ValueError, MemoryError) as e:      # the net cannot take this image: name it
                raise cli.prefixed(e, f"{path} ({rgb.shape[1]} x {rgb.shape[0]})") from None
            cli.publish(label_path, lambda tmp: label_image(label, palette).save(tmp, format="PNG"), args.overwrite)
            if label.shape == rgb.shape[:2]:
                vis = Image.fromarray(overlay(rgb, label, palette, args.alpha))
                cli.publish(overlay_path, lambda tmp: vis.save(tmp, format="JPEG", quality=95), args.overwrite)
            else:                             # a net whose output is not at the input's size: no overlay
                overlay_path = None
            classes = ", ".join(str(c) for c in numpy.unique(label).tolist()[:20])
            print(f"{path}: {rgb.shape[1]}x{rgb.shape[0]}, {seconds * 1000:.1f} ms, classes {classes} -> "
                  f"{label_path}" + (f", {overlay_path}" if overlay_path else ""), flush=True)
            results.append((path, label_path, overlay_path, seconds))
    except BaseException:
        if results:
            print(f"{len(results)} of {len(images)} image(s) done before this; their outputs are kept in {args.out}",
                  file=sys.stderr)
        raise
    if len(results) > 1:
        times = [r[3] for r in results]
        print(f"{len(times)} images, {numpy.mean(times) * 1000:.1f} ms per image on average "
              f"({net.device}; the first includes warm-up)", file=sys.stderr)
    return results


if __name__ == "__main__":
    sys.exit(cli.run(main))

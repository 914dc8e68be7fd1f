"""Inference with a deploy net on images of any size (cf. the FCN reference infer.py).

  python -m solver.infer DEPLOY.prototxt WEIGHTS IMAGE... [--out DIR] [--mean B,G,R] [--gpu N] [--layer score]

Each image is read as RGB, turned into Caffe's input (float32, BGR, minus the mean, 1 x 3 x H x W), the net is
reshaped to it and run, and the argmax over the score blob's channels is the label. For IMAGE it writes
DIR/{name}.png (the label: a palette PNG whose pixel values are the class indices, VOC colours; 16-bit
grayscale beyond 256 classes) and DIR/{name}_overlay.jpg (the colours blended over the image where the label is
not background), and prints the time each image took.
"""
import argparse
import os
import sys
import time

import numpy
from PIL import Image

from layers import backend
from solver.palette import overlay, save_label, voc_palette

VOC_MEAN = (104.00698793, 116.66876762, 122.67891434)


def parse_mean(text):
    try:
        mean = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"--mean must be three numbers B,G,R, got {text!r}") from None
    if len(mean) != 3:
        raise ValueError(f"--mean must be three numbers B,G,R, got {text!r}")
    return mean


def load_image(path):
    """An image file as H x W x 3 uint8 RGB (grey and palette images are converted)."""
    im = Image.open(path)
    return numpy.array(im if im.mode == "RGB" else im.convert("RGB"))


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


def main(argv=None):
    from layers import Net
    parser = argparse.ArgumentParser(prog="python -m solver.infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("deploy", help="deploy prototxt (an Input layer feeding the net)")
    parser.add_argument("weights", help=".caffemodel or .caffemodel.h5")
    parser.add_argument("images", nargs="+", help="image files, any size")
    parser.add_argument("--out", default=".", help="output folder (default: the current one)")
    parser.add_argument("--mean", default=",".join(map(str, VOC_MEAN)), help="BGR mean (default: VOC's)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: CPU)")
    parser.add_argument("--layer", default=None, help="score blob (default: 'score' or the only output)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    args = parser.parse_args(argv)
    try:
        mean = parse_mean(args.mean)
    except ValueError as e:
        parser.error(str(e))

    net = Net(args.deploy, phase="TEST", weights=args.weights, device=args.gpu)
    net.release_blobs = True            # free activations no later layer reads: inference needs a fraction
    layer = score_blob(net, args.layer)
    n_cl = net.blobs[layer].channels
    palette = voc_palette(max(n_cl, 256))
    os.makedirs(args.out, exist_ok=True)
    results = []
    for path in args.images:
        rgb = load_image(path)
        label, seconds = infer(net, rgb, mean, layer)
        stem = os.path.splitext(os.path.basename(path))[0]
        label_path = save_label(label, os.path.join(args.out, f"{stem}.png"), palette)
        overlay_path = os.path.join(args.out, f"{stem}_overlay.jpg")
        if label.shape == rgb.shape[:2]:
            Image.fromarray(overlay(rgb, label, palette, args.alpha)).save(overlay_path, quality=95)
        else:                                 # a net whose output is not at the input's size: no overlay
            overlay_path = None
        classes = ", ".join(str(c) for c in numpy.unique(label).tolist()[:20])
        print(f"{path}: {rgb.shape[1]}x{rgb.shape[0]}, {seconds * 1000:.1f} ms, classes {classes} -> {label_path}"
              + (f", {overlay_path}" if overlay_path else ""))
        results.append((path, label_path, overlay_path, seconds))
    if len(results) > 1:
        times = [r[3] for r in results]
        print(f"{len(times)} images, {numpy.mean(times) * 1000:.1f} ms per image on average "
              f"({net.device}; the first includes warm-up)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()

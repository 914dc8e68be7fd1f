"""Segmentation scores: the confusion histogram and the FCN paper's four metrics (section 5), and test-net
evaluation as the reference score.py does it (fast_hist, compute_hist, seg_tests, do_seg_tests).

With n_ij the number of pixels of class i predicted as class j, t_i = sum_j n_ij the pixels of class i:
  pixel accuracy      sum_i n_ii / sum_i t_i
  mean accuracy       (1/n_cl) sum_i n_ii / t_i
  mean IU             (1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)
  frequency weighted  (sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)
As in the reference, the means are nanmeans: a class absent from both label and prediction has IU 0/0 = NaN and
is left out (a class predicted but absent from the label has IU 0 and counts); a class absent from the label has
accuracy NaN. Pixels whose label is outside [0, n) (255 = void) are not counted.

Command line (a val/test net with its data layer, or a deploy net with image and label folders):
  python -m solver.score VAL.prototxt WEIGHTS [--split ids.txt] [--save DIR] [--layer score --gt label] [--gpu N]
  python -m solver.score DEPLOY.prototxt WEIGHTS --images DIR --labels DIR --split ids.txt [--mean B,G,R]
--save refuses predictions that exist already unless --overwrite is given, and never writes over an input. A split
with no ids, or labels with no pixel in [0, classes) to score (all void or out of range), is an error, not NaN.
Bad input ends with one `error: ...` line naming the file, exit status 2 (130 on Ctrl-C); predictions saved
before it are kept.
"""
import argparse
import datetime
import errno
import os
import sys
import time
import warnings

import numpy

from layers import backend
from layers.image_io import open_image
from solver import cli
from solver.nets import share_trained_layers

VOC_MEAN = (104.00698793, 116.66876762, 122.67891434)


def fast_hist(label, prediction, n):
    """The n x n confusion histogram: rows are the label (ground truth), columns the prediction.

    Pixels whose label is outside [0, n) (void, 255) are skipped, as the reference does.
    """
    label = numpy.asarray(label).ravel()
    prediction = numpy.asarray(prediction).ravel()
    if label.shape != prediction.shape:
        raise ValueError(f"fast_hist: the label has {label.size} pixels but the prediction has {prediction.size}")
    k = (label >= 0) & (label < n)
    pred = prediction[k].astype(numpy.int64)
    if pred.size and (pred.min() < 0 or pred.max() >= n):
        raise ValueError(f"fast_hist: predictions span {pred.min()}..{pred.max()}, outside [0, {n})")
    return numpy.bincount(n * label[k].astype(numpy.int64) + pred, minlength=n ** 2).reshape(n, n)


def compute_scores(hist):
    """The four metrics and per-class IU/accuracy of a confusion histogram (see the module docstring)."""
    hist = numpy.asarray(hist, dtype=numpy.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"compute_scores needs a square histogram, got shape {hist.shape}")
    diag = numpy.diag(hist)
    with numpy.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # nanmean of all-NaN: an empty histogram
        acc = diag / hist.sum(1)
        iu = diag / (hist.sum(1) + hist.sum(0) - diag)
        freq = hist.sum(1) / hist.sum()
        return {
            "pixel_accuracy": float(diag.sum() / hist.sum()),
            "mean_accuracy": float(numpy.nanmean(acc)),
            "mean_iu": float(numpy.nanmean(iu)),
            "fwavacc": float((freq[freq > 0] * iu[freq > 0]).sum()) if hist.sum() else float("nan"),
            "per_class_iu": iu,
            "per_class_accuracy": acc,
        }


# ---------------------------------------------------------------- test-net evaluation, as the reference
def _cpu(array):
    return numpy.asarray(backend.to_cpu(array))


def save_prediction(prediction, path):
    """Write a prediction as a palette PNG, atomically (a temporary file renamed into place)."""
    from netspec.io import atomic_write
    from solver.palette import label_image
    atomic_write(path, lambda tmp: label_image(prediction).save(tmp, format="PNG"))
    return path


def stray_values(label, n, void=255):
    """The label values outside [0, n) other than `void`: pixels fast_hist leaves out that are not void."""
    values = numpy.unique(numpy.asarray(label))
    return set(values[((values < 0) | (values >= n)) & (values != void)].tolist())


def compute_hist(net, save_dir, dataset, layer="score", gt="label", loss="loss", stray=None):
    """Run the net over the ids in `dataset` and return (histogram, mean loss per forward pass).

    The net's data layer walks its own split; `dataset` gives the count and the names of saved predictions
    (palette PNGs of the class indices, save_dir/{id}.png). Each forward pass scores every image of its batch
    (the reference scores only the first, which is the same at its batch of 1), so the batch must divide the
    number of ids. The mean loss is NaN when the net has no `loss` blob. A set given as `stray` collects the label
    values outside [0, n_cl) other than 255 (stray_values), which are not scored.
    """
    if layer not in net.blobs or gt not in net.blobs:
        raise ValueError(f"net '{net.name}' has no blob '{layer if layer not in net.blobs else gt}' to score "
                         f"(blobs: {', '.join(net.blobs)}); set layer= and gt=")
    n_cl = net.blobs[layer].channels
    batch = net.blobs[layer].num
    if net.blobs[gt].num != batch:
        raise ValueError(f"net '{net.name}': blob '{layer}' has batch {batch} but '{gt}' has {net.blobs[gt].num}")
    if len(dataset) % batch:
        # the last pass would read past the split's end, so the next scoring would start part-way through it
        raise ValueError(f"net '{net.name}' reads batches of {batch}, which does not divide the {len(dataset)} ids "
                         f"to score: use a batch size that divides it (or 1, as FCN's val nets)")
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    ids = list(dataset)
    hist = numpy.zeros((n_cl, n_cl))
    total_loss = 0.0
    passes = 0
    for start in range(0, len(ids), batch):
        net.forward()
        passes += 1
        predictions = _cpu(net.blobs[layer].data.argmax(1))
        labels = _cpu(net.blobs[gt].data)
        for k, sample_id in enumerate(ids[start:start + batch]):
            hist += fast_hist(labels[k, 0], predictions[k], n_cl)
            if stray is not None:
                stray |= stray_values(labels[k, 0], n_cl)
            if save_dir:
                save_prediction(predictions[k], os.path.join(save_dir, f"{sample_id}.png"))
        total_loss += float(_cpu(net.blobs[loss].data).ravel()[0]) if loss in net.blobs else float("nan")
    return hist, total_loss / max(passes, 1)


def do_seg_tests(net, iteration, save_format, dataset, layer="score", gt="label", log=print, stray=None,
                 require_pixels=False):
    """Score `net` over `dataset`, print the reference's '>>> time Iteration N ...' lines, return the scores
    (compute_scores' dict plus 'hist', 'loss' and 'iteration'). save_format.format(iteration) names the folder
    predictions go to (a false save_format saves none). With require_pixels, labels that leave no pixel to score
    are a ValueError (no_pixels_error) instead of NaN scores."""
    save_dir = save_format.format(iteration) if save_format else False
    hist, loss = compute_hist(net, save_dir, list(dataset), layer, gt, stray=stray)
    if require_pixels and not hist.sum():
        raise no_pixels_error(len(dataset), hist.shape[0], stray)
    scores = compute_scores(hist)
    for what, value in (("loss", loss), ("overall accuracy", scores["pixel_accuracy"]),
                        ("per-class accuracy", scores["per_class_accuracy"]),
                        ("mean accuracy", scores["mean_accuracy"]), ("per-class IU", scores["per_class_iu"]),
                        ("mean IU", scores["mean_iu"]), ("fwavacc", scores["fwavacc"])):
        log(f">>> {datetime.datetime.now()} Iteration {iteration} {what} {value}")
    return {**scores, "hist": hist, "loss": loss, "iteration": iteration}


def seg_tests(solver_or_net, save_format, dataset, layer="score", gt="label", log=print):
    """Score the solver's first test net (sharing the train net's weights) at the solver's iteration, or a Net
    as it is. Returns do_seg_tests' scores dict. `dataset` is the list of ids the test net's data layer walks."""
    solver = solver_or_net if hasattr(solver_or_net, "net") and hasattr(solver_or_net, "iter") else None
    if solver is None:
        return do_seg_tests(solver_or_net, 0, save_format, dataset, layer, gt, log)
    test_nets = getattr(solver, "test_nets", None)
    if not test_nets:
        raise ValueError("seg_tests: the solver has no test net; give its solver.prototxt a test_net (or "
                         "test_net_param), or pass a Net to score")
    log(f">>> {datetime.datetime.now()} Begin seg tests")
    share_trained_layers(test_nets[0], solver.net)       # pycaffe's test_nets[0].share_with(solver.net)
    return do_seg_tests(test_nets[0], solver.iter, save_format, dataset, layer, gt, log)


def seg_test_callback(every, save_format, dataset, layer="score", gt="label", log=print):
    """A solver callback that runs seg_tests each time the iteration is a multiple of `every`, as solve.py's
    `solver.step(every); score.seg_tests(...)` loop does; the scores of every run go to its `history` list.

        solver.add_callback(seg_test_callback(4000, "segs/{}", val_ids))      # then solver.step(100000)
    """
    def callback(solver):
        if solver.iter > 0 and solver.iter % every == 0:
            callback.history.append(seg_tests(solver, save_format, dataset, layer, gt, log))
    callback.history = []
    return callback


# ---------------------------------------------------------------- a deploy net over image and label folders
def no_pixels_error(images, n_cl, stray=None):
    """The error for labels with no pixel to score (all void, or outside [0, n_cl))."""
    found = f"; values found outside it: {', '.join(map(str, sorted(stray)[:12]))}" if stray else ""
    return ValueError(f"nothing to score: no label pixel of the {images} image(s) is a class in [0, {n_cl}) (all are "
                      f"void (255) or out of range{found}); check the labels, their folder and the net's classes")


def score_folder(net, samples, mean=VOC_MEAN, layer=None, input_name=None, save_dir=None, stray=None,
                 max_pixels=None):
    """Score a deploy net on (id, image path, label path) samples; labels are PNGs of class indices (255 =
    void). Returns the histogram; predictions go to save_dir/{id}.png when save_dir is set. A set given as `stray`
    collects the label values outside [0, n_cl) other than 255."""
    from layers.data.seg_folder import read_label
    from solver.infer import infer, load_image, score_blob
    layer = score_blob(net, layer)
    n_cl = net.blobs[layer].channels
    hist = numpy.zeros((n_cl, n_cl))
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    for sample_id, image_path, label_path in samples:
        rgb = load_image(image_path, max_pixels)
        try:
            prediction, _ = infer(net, rgb, mean, layer=layer, input_name=input_name)
        except (ValueError, MemoryError) as e:      # the net cannot take this image: name it
            raise cli.prefixed(e, f"{image_path} ({rgb.shape[1]} x {rgb.shape[0]})") from None
        label = read_label(label_path, max_pixels)
        if label.shape != prediction.shape:
            raise ValueError(f"label {label_path} is {label.shape} but image {image_path} is {prediction.shape}")
        hist += fast_hist(label, prediction, n_cl)
        if stray is not None:
            stray |= stray_values(label, n_cl)
        if save_dir:
            save_prediction(prediction, os.path.join(save_dir, f"{sample_id}.png"))
    return hist


def _read_ids(path):
    """The ids of a split file, one a line (a byte-order mark and blank lines are skipped); a file with none is an
    error."""
    cli.require_file(path, "--split")
    try:
        with open(path, encoding="utf-8-sig") as f:
            ids = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"--split {path}: not a text file of ids (byte {e.start} is not UTF-8)") from None
    if not ids:
        raise ValueError(f"--split {path} lists no ids: there is nothing to score")
    return ids


def _find(folder, sample_id, exts, what):
    for ext in exts:
        path = os.path.join(folder, sample_id + ext)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(errno.ENOENT, f"{what} {folder} has no file for id {sample_id!r} (tried "
                                          f"{', '.join(sample_id + e for e in exts)})")


def main(argv=None):
    """The command line; returns the scores dict. Errors raise (the command reports them through solver.cli.run)."""
    from layers import Net
    from netspec.io import read_net
    from solver.infer import deploy_net, parse_mean
    parser = argparse.ArgumentParser(prog="python -m solver.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("net", help="a val/test prototxt with a data layer, or a deploy prototxt with an Input")
    parser.add_argument("weights", help=".caffemodel or .caffemodel.h5")
    parser.add_argument("--split", help="ids, one a line (default for a val net: its data layer's split)")
    parser.add_argument("--images", help="deploy net: folder of images {id}.jpg/.png")
    parser.add_argument("--labels", help="deploy net: folder of label PNGs {id}.png (class indices, 255 = void)")
    parser.add_argument("--mean", default=",".join(map(str, VOC_MEAN)), help="deploy net: BGR mean (B,G,R)")
    parser.add_argument("--layer", default="score", help="the score blob (default: score)")
    parser.add_argument("--gt", default="label", help="val net: the label blob (default: label)")
    parser.add_argument("--save", help="write each prediction as a palette PNG into this folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --save: replace predictions that exist already (default: refuse them)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="deploy net: largest image to read, in pixels (default: Pillow's decompression-bomb "
                             "limit, 89478485)")
    parser.add_argument("--gpu", type=int, default=None, help="GPU id (default: CPU)")
    args = parser.parse_args(argv)
    try:
        mean = parse_mean(args.mean)
    except ValueError as e:
        parser.error(str(e))

    cli.require_file(args.net, "net")
    cli.require_file(args.weights, "weights")
    deploy = any(lp.type == "Input" for lp in read_net(args.net).layer)
    stray = set()
    start = time.perf_counter()
    if deploy:                              # a deploy net: the images come from folders
        if not (args.images and args.labels and args.split):
            parser.error(f"{args.net} is a deploy net (an Input layer): give --images, --labels and --split")
        cli.require_folder(args.images, "--images")
        cli.require_folder(args.labels, "--labels")
        ids = _read_ids(args.split)
        samples = [(i, _find(args.images, i, (".jpg", ".jpeg", ".png", ".bmp"), "--images"),
                    _find(args.labels, i, (".png",), "--labels")) for i in ids]
        _check_save(args, ids, [p for _, image, label in samples for p in (image, label)])
        with open_image(samples[0][1], args.max_pixels, "give --max-pixels {pixels} to read it") as im:
            size = im.size                  # the net is built at the first image's size, not its declared one
        net = deploy_net(args.net, args.weights, args.gpu, samples[0][1], size)
        hist = score_folder(net, samples, mean, args.layer, save_dir=args.save, stray=stray,
                            max_pixels=args.max_pixels)
        if not hist.sum():
            raise no_pixels_error(len(ids), hist.shape[0], stray)
        scores = compute_scores(hist)
        for key in ("pixel_accuracy", "mean_accuracy", "mean_iu", "fwavacc"):
            print(f"{key} {scores[key]:.4f}")
        print(f"per_class_iu {numpy.array2string(scores['per_class_iu'], precision=4)}")
    else:
        ids = _read_ids(args.split) if args.split else None
        net = Net(args.net, phase="TEST", weights=args.weights, device=args.gpu)
        if ids is None:
            data = next((l for l in net.layers if hasattr(l, "indices")), None)
            if data is None:
                parser.error("give --split: the net has no data layer whose split could be used")
            ids = list(data.indices)
        _check_save(args, ids)
        scores = do_seg_tests(net, 0, args.save and args.save.replace("{", "{{").replace("}", "}}"), ids,
                              args.layer, args.gt, stray=stray, require_pixels=True)
    if stray:
        print(f"note: labels hold values outside [0, {len(scores['per_class_iu'])}) other than 255, which are not "
              f"scored: {', '.join(map(str, sorted(stray)[:12]))}", file=sys.stderr)
    print(f"scored {len(ids)} image(s) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return scores


def _check_save(args, ids, inputs=()):
    """--save: create the folder; refuse predictions that exist (unless --overwrite) or that are inputs."""
    if args.save:
        cli.output_folder(args.save, "--save")
        cli.refuse_existing([os.path.join(args.save, f"{i}.png") for i in ids], inputs, args.overwrite)


if __name__ == "__main__":
    sys.exit(cli.run(main))

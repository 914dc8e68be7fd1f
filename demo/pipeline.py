"""The FCN paper's pipeline, end to end, on the synthetic data, driven by the project's own commands and APIs.

    data        demo.synthetic writes the segmentation set (VOC layout) and the classification crops (HDF5)
    pretrain    `python -m solver` trains the classifier (Adam) on the crops: the stand-in for ILSVRC
    surgery     weights.surgery.convolutionalize turns fc6/fc7 into convolutions and drops fc8
    32s-fixed   FCN-32s with only score_fr learning (the paper's Table 2 baseline)
    32s         FCN-32s, every layer learning, from the convolutionalized classifier
    16s, 8s     each initialised from the stage before by weights.surgery.handoff (new score layers at zero,
                new upsampling bilinear), then trained
Each stage is scored on val (solver.score's histogram and metrics) and drawn (image, ground truth, prediction).
Learning curves: each stage's training loss after every iteration and its val mean IU at a few iterations (the
same scoring, on the val net sharing the weights being trained), into results.json and figures/learning-curves.png.
Results: OUT/results.md and OUT/results.json, OUT/figures/*.png; nets under OUT/nets, weights under OUT/models.

Training settings (default size): the classifier Adam at 2e-3 for 3200 iterations, the rate tenfold lower for
the last quarter; every FCN stage SGD, momentum 0.9, weight decay 5e-4, lr 0.03 falling tenfold for the last
quarter of the stage's iterations (Caffe's "step" policy), loss normalised over valid pixels, batch 8. At lr 0.01
FCN-32s learned too little in its iterations to stay clearly above FCN-32s-fixed. FCN's own recipe (summed loss,
momentum 0.99, batch 1, rates 1e-10..1e-14) is meant for 500 x 500 images and a hundred thousand iterations; in a
few hundred it leaves the new skip layers untrained.

The FCNs read the VOC-layout folder through SegFolderData (batch_size 8 at the one image size) rather than
VOCSegData, which gives batch 1: the same 8 images as 8 passes of batch 1 with iter_size 8 cost as much in the
convolutions but 8 times as much in every per-pass overhead (the 64 x 64 upsampling above all).
"""
import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy
from PIL import Image, ImageDraw

from demo import nets, plot, synthetic

STAGE_TITLES = {"32s-fixed": "FCN-32s-fixed", "32s": "FCN-32s", "16s": "FCN-16s", "8s": "FCN-8s"}
INIT_FROM = {"32s-fixed": "classifier-conv", "32s": "classifier-conv", "16s": "fcn32s", "8s": "fcn16s"}
METRICS = (("pixel_accuracy", "pixel acc."), ("mean_accuracy", "mean acc."), ("mean_iu", "mean IU"),
           ("fwavacc", "f.w. IU"))


@dataclasses.dataclass(frozen=True)
class Config:
    """One size of the demo. Image sizes must pass the nets' crop checks: with pad 33 and a 3 x 3 fc6 those are
    17-32, 49-64, 81-96, 113-128, ... and the crops must give a 3 x 3 pool5 (65-96)."""
    size: int = 96                 # segmentation images, size x size
    n_train: int = 1500
    n_val: int = 200
    crop: int = 72                 # classification crops, crop x crop
    n_crops: int = 12000           # fewer over-fit: 3000 gave 0.46 held-out accuracy after 800 iterations
    n_crops_val: int = 500
    widths: tuple = (8, 16, 32, 64, 128)
    fc: int = 256                  # fc6 / fc7 outputs
    pad: int = 33                  # conv1_1's pad in the FCN
    clf_batch: int = 32
    clf_val_batch: int = 50
    clf_iters: int = 3200
    clf_lr: float = 2e-3
    clf_drop: float = 0.75         # the classifier's rate falls tenfold after this fraction of its iterations
    batch: int = 8
    val_batch: int = 8
    lr: float = 0.03
    drop: float = 0.75             # each stage's rate falls tenfold after this fraction of its iterations
    iters: tuple = (("32s-fixed", 200), ("32s", 1000), ("16s", 800), ("8s", 1200))
    display: int = 50
    curve_points: int = 4          # val mean IU for the learning curves at iterations 0, 1/4, 2/4, 3/4 (and the end)
    figure_images: int = 4
    max_objects: int = 4           # objects per image: 1 to max_objects
    radius: tuple = synthetic.RADIUS

    def stage_iters(self, stage):
        return dict(self.iters)[stage]


CONFIGS = {
    # the test's: fewer, larger objects, fewer images and iterations, a thinner fc (checks the wiring and the
    # paper's ordering, with smaller margins than the default size's)
    "tiny": Config(n_train=240, n_val=32, n_crops=600, n_crops_val=100, fc=128, clf_batch=16, clf_iters=400,
                   batch=4, val_batch=8, iters=(("32s-fixed", 40), ("32s", 300), ("16s", 300), ("8s", 300)),
                   display=25, max_objects=2, radius=(0.2, 0.4)),
    "default": Config(),
    # for a GPU: larger images and nets, twice the data, three times the iterations
    "large": Config(size=128, n_train=3000, n_val=400, crop=96, n_crops=24000, n_crops_val=1000,
                    widths=(16, 32, 64, 128, 256), fc=512, clf_batch=64, clf_iters=2400, batch=16, val_batch=16,
                    iters=(("32s-fixed", 600), ("32s", 1800), ("16s", 1800), ("8s", 1800)), display=100,
                    lr=0.01, drop=0.0, clf_drop=0.0),        # the settings its measured GPU run used
}


class Paths:
    """Where everything goes under the output folder (relative paths stay relative to the working directory)."""

    def __init__(self, out):
        self.out = out
        self.data = os.path.join(out, "data")
        self.crops = os.path.join(out, "crops")
        self.nets = os.path.join(out, "nets")
        self.models = os.path.join(out, "models")
        self.figures = os.path.join(out, "figures")

    def net_dir(self, name):
        return os.path.join(self.nets, f"demo-{name}")

    def solver(self, name):
        return os.path.join(self.net_dir(name), "solver.prototxt")

    def model(self, name):
        return os.path.join(self.models, f"{name}.caffemodel")


def fcn_name(stage):
    return f"fcn{stage}"


# ---------------------------------------------------------------- the nets
def seg_data_param(data_dir, split, batch, size, seed):
    """SegFolderData's param_str for the VOC-layout folder: raw BGR (the nets normalise), batch at one size."""
    return dict(image_dir=os.path.join(data_dir, "JPEGImages"), label_dir=os.path.join(data_dir, "SegmentationClass"),
                split=os.path.join(data_dir, "ImageSets", "Segmentation", f"{split}.txt"),
                num_classes=synthetic.NUM_CLASSES, mean=(0, 0, 0), batch_size=batch, crop=size, seed=seed)


def write_nets(nets_dir, out, config, seed=0, sample=None):
    """Write the demo's nets and solvers under nets_dir/demo-{classifier,fcn32s-fixed,fcn32s,fcn16s,fcn8s}/
    (train.prototxt, val.prototxt, solver.prototxt; deploy.prototxt for the FCNs), their data paths under `out`.
    sample: train the FCNs with loss sampling (section 3.4), keeping this fraction of the 32 x 32 cells (the
    final layer's) in batches 1 / sample times larger, so that the expected cells per batch stay the same.
    Returns {name: folder}."""
    from netspec import io as netio
    paths = Paths(out)
    written = {}

    def write(name, train, val, solver, deploy=None):
        folder = os.path.join(nets_dir, f"demo-{name}")
        os.makedirs(folder, exist_ok=True)
        netio.write_text(train, os.path.join(folder, "train.prototxt"))
        netio.write_text(val, os.path.join(folder, "val.prototxt"))
        if deploy is not None:
            netio.write_text(deploy, os.path.join(folder, "deploy.prototxt"))
        netio.write_text(solver, os.path.join(folder, "solver.prototxt"))
        written[name] = folder

    c = config
    n_cls = synthetic.NUM_CLASSES - 1
    write("classifier",
          nets.classifier(os.path.join(paths.crops, "crops.txt"), c.clf_batch, c.widths, c.fc, n_cls),
          nets.classifier(os.path.join(paths.crops, "crops_val.txt"), c.clf_val_batch, c.widths, c.fc, n_cls,
                          shuffle=False),
          nets.solver("train.prototxt", "val.prototxt", c.n_crops_val // c.clf_val_batch, c.clf_iters,
                      os.path.join(paths.models, "classifier"), kind="Adam", base_lr=c.clf_lr,
                      display=c.display, random_seed=seed, stepsize=_stepsize(c.clf_iters, c.clf_drop)))
    fc_kernel = _pool5_size(c.crop)
    sampling = dict(keep=sample, cell=SAMPLE_CELL, seed=seed) if sample is not None else None
    for stage in nets.STAGES:
        def fcn(split, batch, sampling=None):
            data = seg_data_param(paths.data, split, batch, c.size, seed) if split else None
            return nets.fcn(stage, data, c.widths, c.fc, fc_kernel, synthetic.NUM_CLASSES, c.pad, c.size, sampling)
        train = fcn("train", sampled_batch(c.batch, sample), sampling) if sampling else fcn("train", c.batch)
        write(fcn_name(stage), train, fcn("val", c.val_batch),
              nets.solver("train.prototxt", "val.prototxt", c.n_val // c.val_batch, c.stage_iters(stage),
                          os.path.join(paths.models, fcn_name(stage)), kind="SGD", base_lr=c.lr, momentum=0.9,
                          display=c.display, random_seed=seed, stepsize=_stepsize(c.stage_iters(stage), c.drop)),
              fcn(None, 1))
    return written


SAMPLE_CELL = 32                     # loss sampling's cells: the final layer's stride, as the paper's


def sampled_batch(batch, sample):
    """The batch that keeps the expected number of sampled cells per iteration: batch / sample, rounded."""
    if not 0 < sample <= 1:
        raise ValueError(f"demo: --sample is the fraction of loss cells kept, in (0, 1]; got {sample}")
    return max(1, round(batch / sample))


def _stepsize(iters, drop):
    """The "step" policy's stepsize that drops the rate once, after a fraction `drop` of `iters` (0: no drop)."""
    return round(iters * drop) if drop else 0


def _pool5_size(crop):
    size = crop
    for _ in range(5):
        size = -(-size // 2)                # 2 x 2 max pooling, stride 2, ceil
    return size


def check_config(config):
    """Refuse sizes the nets cannot take, saying why (the crops of a 3 x 3 fc6 and pad 33 fit only some sizes)."""
    k = _pool5_size(config.crop)
    if k % 2 == 0 or k < 3:
        raise ValueError(f"demo: {config.crop} x {config.crop} crops give a {k} x {k} pool5, so fc6 would be {k} x "
                         f"{k}; it must be odd and at least 3 (a 2 x 2 fc6 makes the pool3 crop offset negative, which "
                         f"Caffe's Crop cannot do): use crops of 65-96 pixels")
    if config.n_val % config.val_batch or config.n_crops_val % config.clf_val_batch:
        raise ValueError("demo: n_val and n_crops_val must be multiples of their validation batch sizes")


# ---------------------------------------------------------------- progress
class Log:
    """Progress lines on stdout, each prefixed by the time since the start."""

    def __init__(self, stream=None, quiet=False):
        self.start = time.perf_counter()
        self.stream = stream or sys.stdout
        self.quiet = quiet

    def elapsed(self):
        return time.perf_counter() - self.start

    def __call__(self, message, detail=False):
        if self.quiet and detail:
            return
        for i, line in enumerate(str(message).splitlines() or [""]):
            prefix = f"[{self.elapsed():6.1f}s] " if i == 0 else " " * 10
            print(prefix + line, file=self.stream, flush=True)


def _fmt_time(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------- stages
def make_data(paths, config, seed, log):
    start = time.perf_counter()
    synthetic.write_voc(paths.data, seed, config.n_train, config.n_val, config.size,
                        max_objects=config.max_objects, radius=config.radius)
    log(f"segmentation data: {config.n_train} train + {config.n_val} val images, {config.size} x {config.size}, "
        f"{synthetic.NUM_CLASSES - 1} classes + background, VOC layout in {paths.data} "
        f"({time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    stamp = os.path.join(paths.crops, "settings.txt")
    settings = (f"seed {seed} n {config.n_crops} {config.n_crops_val} crop {config.crop} scale {config.size} "
                f"radius {config.radius}\n")
    if not (os.path.exists(stamp) and open(stamp).read() == settings):
        synthetic.write_crops(paths.crops, "crops", seed, config.n_crops, config.crop, config.size, config.radius)
        synthetic.write_crops(paths.crops, "crops_val", seed, config.n_crops_val, config.crop, config.size,
                              config.radius)
        with open(stamp, "w") as f:
            f.write(settings)
    log(f"classification crops: {config.n_crops} train + {config.n_crops_val} held out, {config.crop} x "
        f"{config.crop}, one object centred, HDF5 in {paths.crops} ({time.perf_counter() - start:.1f} s)")


def _project_env():
    """The environment for `python -m solver`: this checkout importable even when not pip-installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def pretrain(paths, config, device, log):
    """Train the classifier with `python -m solver` (as Caffe users run `caffe train`); returns
    (weights path, held-out accuracy, seconds)."""
    solver_path = paths.solver("classifier")
    cmd = [sys.executable, "-m", "solver", solver_path] + (["--gpu", str(device)] if device is not None else [])
    log(f"pretraining the classifier: python -m solver {solver_path}" + (f" --gpu {device}" if device is not None
                                                                          else ""))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_project_env())
    tail = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        tail = (tail + [line])[-30:]
        text = line.split("] ", 1)[-1]
        if text.startswith("Iteration") and "loss =" in text:
            log(f"  classifier {text.replace('Iteration ', 'iter ')}", detail=True)
        elif line[:1] in "EF" and line[1:2].isdigit():
            log(f"  {line}")
    if proc.wait():
        raise RuntimeError("demo: `" + " ".join(cmd) + f"` failed (exit status {proc.returncode}):\n"
                           + "\n".join(tail))
    seconds = time.perf_counter() - start
    weights = os.path.join(paths.models, f"classifier_iter_{config.clf_iters}.caffemodel")
    accuracy = classifier_accuracy(os.path.join(paths.net_dir("classifier"), "val.prototxt"), weights,
                                   config.n_crops_val // config.clf_val_batch, device)
    log(f"classifier: held-out accuracy {accuracy:.3f} on {config.n_crops_val} crops (chance "
        f"{1 / (synthetic.NUM_CLASSES - 1):.3f}); trained in {_fmt_time(seconds)}")
    return weights, accuracy, seconds


def classifier_accuracy(val_net, weights, iters, device=None):
    from layers import Net
    net = Net(val_net, phase="TEST", weights=weights, device=device)
    return float(numpy.mean([float(numpy.asarray(_cpu(net.forward()["accuracy"]))) for _ in range(iters)]))


def _cpu(array):
    from layers import backend
    return numpy.asarray(backend.to_cpu(array))


def convolutionalize(paths, classifier_weights, log):
    from netspec import io as netio
    from weights import surgery
    fcn_net = os.path.join(paths.net_dir(fcn_name("32s")), "train.prototxt")
    param, report = surgery.convolutionalize(classifier_weights, fcn=fcn_net)
    target = paths.model("classifier-conv")
    netio.write_caffemodel(param, target)
    converted = "; ".join(f"{name} {detail}" for name, detail in report.converted)
    log(f"convolutionalized -> {target}: {converted}; dropped {', '.join(report.names('dropped'))}")
    return target, report


class Curve:
    """A stage's learning curve while it trains: the solver's smoothed loss after every iteration (the loss it logs;
    the demo's average_loss is 1, so each iteration's own) and val mean IU at `points` evenly spaced iterations from
    0 (evaluate: the val net, sharing the weights, over the whole val split; the score at the end is run()'s).
    The val net reads the split in order and no draw of its data layer or of Dropout (off in TEST) comes from the
    generators training uses, so the scoring leaves the training trajectory as it is. `seconds`: its cost."""

    def __init__(self, iters, points, n_batches):
        self.score_at = sorted({iters * k // points for k in range(max(1, points))})
        self.n_batches = n_batches
        self.train = []                     # (iteration, loss), iteration counted after the update
        self.val = []                       # (iteration, mean IU)
        self.seconds = 0.0

    def score(self, solver):
        start = time.perf_counter()
        scores, _ = evaluate(solver, self.n_batches, 0)
        self.val.append((solver.iter, scores["mean_iu"]))
        self.seconds += time.perf_counter() - start

    def step(self, solver):
        self.train.append((solver.iter, float(solver.smoothed_loss)))
        if solver.iter in self.score_at:
            self.score(solver)

    def series(self, final_mean_iu=None):
        """The JSON form: iterations and values, the final score appended when given."""
        val = self.val + ([(self.train[-1][0] if self.train else 0, final_mean_iu)]
                          if final_mean_iu is not None else [])
        return {"train_iteration": [i for i, _ in self.train], "train_loss": [v for _, v in self.train],
                "val_iteration": [i for i, _ in val], "val_mean_iu": [v for _, v in val],
                "val_scoring_seconds": self.seconds}


def train_stage(stage, paths, config, device, log, on_init=None, curve=None):
    """Build the stage's solver, initialise it from its predecessor (weights.surgery.handoff), train, save.
    curve: a Curve to record (its scoring time is left out of the seconds). Returns (solver, report, seconds)."""
    import logging
    from solver import get_solver
    from solver.log import get_logger
    from weights import surgery
    source = paths.model(INIT_FROM[stage])
    solver_log = get_logger()
    level = solver_log.level
    solver_log.setLevel(logging.WARNING)      # the demo prints its own progress
    try:
        solver = get_solver(paths.solver(fcn_name(stage)), device=device)
        report = surgery.handoff(solver.net, source)
        if on_init:
            on_init(stage, solver.net, source, report)
        new = report.names("zeroed") + report.names("bilinear")
        log(f"{STAGE_TITLES[stage]}: {len(report.copied)} layers from {source}"
            + (f"; new: {', '.join(new)}" if new else ""))
        iters = config.stage_iters(stage)
        if curve is not None:
            curve.score(solver)                 # iteration 0: the weights it starts from
            solver.add_callback(curve.step, "step")
        start = time.perf_counter()

        def scoring():
            return curve.seconds if curve is not None else 0.0
        start_scoring = scoring()

        def progress(s):
            if s.iter % config.display == 0 or s.iter == iters:
                rate = s.iter / (time.perf_counter() - start - (scoring() - start_scoring))
                log(f"  {STAGE_TITLES[stage]} iter {s.iter}/{iters}  loss {s.smoothed_loss:.3f}  "
                    f"({rate:.1f} iter/s, {_fmt_time((iters - s.iter) / rate)} left)", detail=True)
        solver.add_callback(progress, "step")
        solver.step(iters)
        seconds = time.perf_counter() - start - (scoring() - start_scoring)
    finally:
        solver_log.setLevel(level)
    os.makedirs(paths.models, exist_ok=True)
    solver.net.save(paths.model(fcn_name(stage)))
    return solver, report, seconds


def evaluate(solver, n_batches, keep):
    """Score the solver's val net (sharing the trained weights) over the val split: solver.score's histogram
    and metrics. Returns (scores, predictions of the first `keep` val images)."""
    from solver.score import compute_scores, fast_hist
    net = solver.test_nets[0]
    solver.share_weights(net)
    n_cl = net.blobs["score"].channels
    hist = numpy.zeros((n_cl, n_cl))
    kept = []
    for _ in range(n_batches):
        net.forward()
        prediction = _cpu(net.blobs["score"].data).argmax(1)
        hist += fast_hist(_cpu(net.blobs["label"].data)[:, 0], prediction, n_cl)
        kept.extend(prediction[:max(0, keep - len(kept))])
    return compute_scores(hist), kept


# ---------------------------------------------------------------- figures and tables
def _tile(columns, titles, scale=2, gap=4):
    """Rows of images (H x W x 3 uint8) under column titles, as one PIL image."""
    rows = len(columns[0])
    h, w = columns[0][0].shape[:2]
    h, w = h * scale, w * scale
    top = 14
    canvas = Image.new("RGB", (len(columns) * (w + gap) - gap, top + rows * (h + gap) - gap), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (column, title) in enumerate(zip(columns, titles)):
        draw.text((c * (w + gap) + 2, 1), title, fill="black")
        for r, image in enumerate(column):
            tile = Image.fromarray(image).resize((w, h), Image.NEAREST)
            canvas.paste(tile, (c * (w + gap), top + r * (h + gap)))
    return canvas


def val_examples(paths, keep):
    ids = open(os.path.join(paths.data, "ImageSets", "Segmentation", "val.txt")).read().split()[:keep]
    images = [numpy.asarray(Image.open(os.path.join(paths.data, "JPEGImages", f"{i}.jpg")).convert("RGB"))
              for i in ids]
    labels = [numpy.asarray(Image.open(os.path.join(paths.data, "SegmentationClass", f"{i}.png"))) for i in ids]
    return images, labels


def figures(paths, predictions, keep):
    """figures/{stage}.png (image, ground truth, prediction) and figures/all-stages.png (the paper's Figure 4:
    one column per stage, then the ground truth)."""
    from solver.palette import colorize
    os.makedirs(paths.figures, exist_ok=True)
    images, labels = val_examples(paths, keep)
    truth = [colorize(label) for label in labels]
    written = []
    for stage, preds in predictions.items():
        path = os.path.join(paths.figures, f"{fcn_name(stage)}.png")
        _tile([images, truth, [colorize(p) for p in preds]], ["image", "ground truth", STAGE_TITLES[stage]]
              ).save(path)
        written.append(path)
    path = os.path.join(paths.figures, "all-stages.png")
    _tile([images] + [[colorize(p) for p in preds] for preds in predictions.values()] + [truth],
          ["image"] + [STAGE_TITLES[s] for s in predictions] + ["ground truth"]).save(path)
    written.append(path)
    return written


CURVE_WINDOWS = 30          # the learning curves' training loss: means over about this many windows per stage


def learning_curves(paths, curves):
    """figures/learning-curves.png: a column per stage, training loss above (means over windows of 1/30 of the
    stage's iterations, each plotted at its last iteration: one batch's loss is noisy) and val mean IU below; the
    stages share each row's scale."""
    os.makedirs(paths.figures, exist_ok=True)
    loss, iu = [], []
    for stage, c in curves.items():
        pairs = list(zip(c["train_iteration"], c["train_loss"]))
        width = max(1, len(pairs) // CURVE_WINDOWS)
        windows = [pairs[k:k + width] for k in range(0, len(pairs), width)]
        loss.append((f"{STAGE_TITLES[stage]}: training loss", "iterations",
                     {"loss": [(w[-1][0], sum(v for _, v in w) / len(w)) for w in windows]}))
        iu.append((f"{STAGE_TITLES[stage]}: val mean IU (%)", "iterations",
                   {"mean IU": [(i, 100 * v) for i, v in zip(c["val_iteration"], c["val_mean_iu"])
                                if v is not None and not numpy.isnan(v)]}))
    path = os.path.join(paths.figures, "learning-curves.png")
    plot.stack([plot.chart(loss, legend=False),
                plot.chart(iu, markers=True, colours=plot.COLOURS[1:], legend=False)], path)
    return path


def markdown_table(results):
    lines = ["| stage | " + " | ".join(title for _, title in METRICS) + " | iterations | train time |",
             "|---" * (len(METRICS) + 3) + "|"]
    for stage, r in results["stages"].items():
        lines.append(f"| {STAGE_TITLES[stage]} | " + " | ".join(f"{100 * r[key]:.1f}" for key, _ in METRICS)
                     + f" | {r['iterations']} | {r['train_seconds']:.0f} s |")
    return "\n".join(lines)


def findings(stages):
    """The paper's orderings (Table 2 and Table 1's skips), on mean IU."""
    iu = {stage: r["mean_iu"] for stage, r in stages.items()}
    checks = []
    if "32s-fixed" in iu and "32s" in iu:
        checks.append(("FCN-32s-fixed below FCN-32s", iu["32s-fixed"] < iu["32s"]))
    if "32s" in iu and "16s" in iu:
        checks.append(("FCN-16s above FCN-32s", iu["16s"] > iu["32s"]))
    if "16s" in iu and "8s" in iu:
        checks.append(("FCN-8s at least FCN-16s", iu["8s"] >= iu["16s"]))
    return checks


def write_results(paths, results):
    table = markdown_table(results)
    c = results["config"]
    t = results["timings"]
    lines = [f"# FCN demo: the staged pipeline on synthetic data ({results['size']} configuration, seed "
             f"{results['seed']})", "",
             f"{c['n_train']} train / {c['n_val']} val images of {c['size']} x {c['size']} pixels, "
             f"{synthetic.NUM_CLASSES - 1} object classes + background; scores on val, in percent.", "",
             table, "",
             (f"Classifier (the ILSVRC stand-in): held-out accuracy {100 * results['classifier_accuracy']:.1f}% "
              f"after {c['clf_iters']} Adam iterations." if results["classifier_accuracy"] is not None else
              "Classifier: not retrained in this run."), "",
             "Paper's findings on this data: " + "; ".join(f"{what}: {'yes' if ok else 'NO'}"
                                                           for what, ok in results["findings"]) + ".", "",
             "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + f" (device: {results['device']}).", "",
             "Figures: " + ", ".join(os.path.relpath(p, paths.out) for p in results["figures"]), ""]
    if results.get("curves"):
        curves = results["curves"]
        lines += [
            "Learning curves (results.json's curves, figures/learning-curves.png): training loss at every "
            "iteration; val mean IU at iterations " + "; ".join(
                f"{STAGE_TITLES[s]} " + ", ".join(str(i) for i in c["val_iteration"]) for s, c in curves.items())
            + ". The periodic scoring took " + " + ".join(f"{c['val_scoring_seconds']:.1f}" for c in curves.values())
            + " s.", ""]
    with open(os.path.join(paths.out, "results.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(paths.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=_json_default)
    return table


def _json_default(value):
    if isinstance(value, numpy.ndarray):
        return [None if numpy.isnan(v) else float(v) for v in value.ravel()]
    if isinstance(value, (numpy.floating, numpy.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- the whole run
def run(out="demo_out", size="default", seed=0, device=None, stages=nets.STAGES, quiet=False, log=None,
        on_init=None, config=None, sample=None):
    """Run the pipeline; returns the results dict (also written to out/results.json and out/results.md).

    on_init(stage, net, source, report) is called after each stage's initialisation, before training.
    sample: train the FCN stages with loss sampling at this rate (write_nets says how).
    """
    config = config or CONFIGS[size]
    check_config(config)
    log = log or Log(quiet=quiet)
    paths = Paths(out)
    for folder in (paths.out, paths.models, paths.figures):
        os.makedirs(folder, exist_ok=True)
    timings = {}
    devname = "CPU" if device is None else f"GPU {device}"
    log(f"FCN demo ({size} configuration, seed {seed}, {devname}) -> {out}")

    start = time.perf_counter()
    make_data(paths, config, seed, log)
    write_nets(paths.nets, out, config, seed, sample)
    if sample is not None:
        log(f"loss sampling: {sample:g} of the {SAMPLE_CELL} x {SAMPLE_CELL} loss cells kept, FCN batches of "
            f"{sampled_batch(config.batch, sample)} instead of {config.batch}")
    timings["data"] = time.perf_counter() - start

    if any(INIT_FROM[stage] == "classifier-conv" for stage in stages) or not os.path.isfile(
            paths.model("classifier-conv")):
        clf_weights, accuracy, timings["pretraining"] = pretrain(paths, config, device, log)
        convolutionalize(paths, clf_weights, log)
    else:                                   # later stages only: they start from saved FCN weights
        accuracy = None

    results = {"size": size, "seed": seed, "sample": sample, "device": devname, "config": dataclasses.asdict(config),
               "classifier_accuracy": accuracy, "stages": {}, "timings": timings}
    predictions, curves = {}, {}
    for stage in stages:
        curve = Curve(config.stage_iters(stage), config.curve_points, config.n_val // config.val_batch)
        solver, report, seconds = train_stage(stage, paths, config, device, log, on_init, curve)
        start = time.perf_counter()
        scores, predictions[stage] = evaluate(solver, config.n_val // config.val_batch, config.figure_images)
        timings[stage] = seconds + curve.seconds + time.perf_counter() - start
        curves[stage] = curve.series(scores["mean_iu"])
        results["stages"][stage] = {
            **{key: scores[key] for key, _ in METRICS},
            "per_class_iu": scores["per_class_iu"], "iterations": config.stage_iters(stage),
            "train_seconds": seconds, "init_from": paths.model(INIT_FROM[stage]),
            "initialised": {kind: report.names(kind) for kind in ("copied", "zeroed", "bilinear")},
            "weights": paths.model(fcn_name(stage))}
        log(f"{STAGE_TITLES[stage]} on val: " + ", ".join(f"{title} {100 * scores[key]:.1f}"
                                                          for key, title in METRICS)
            + f" (trained {_fmt_time(seconds)})")
        log(f"  {STAGE_TITLES[stage]} learning curve: val mean IU " + ", ".join(
            f"{100 * v:.1f}" for v in curves[stage]["val_mean_iu"]) + " at iterations " + ", ".join(
            str(i) for i in curves[stage]["val_iteration"]) + f" (the scoring during training took "
            f"{curve.seconds:.1f} s)", detail=True)
        del solver
    results["curves"] = curves
    results["figures"] = figures(paths, predictions, config.figure_images)
    results["figures"].append(learning_curves(paths, curves))
    results["findings"] = findings(results["stages"])
    timings["total"] = log.elapsed()
    table = write_results(paths, results)
    log("results (val, %):\n" + table)
    for what, ok in results["findings"]:
        log(f"{what}: {'yes' if ok else 'NO'}")
    log(f"done in {_fmt_time(timings['total'])}: {os.path.join(out, 'results.md')}, results.json, figures/")
    return results

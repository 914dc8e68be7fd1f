"""A synthetic segmentation dataset, generated deterministically, written in PASCAL VOC's folder layout.

Each image is a cluttered, textured background with 1 to 4 objects of six classes painted over it (later
objects occlude earlier ones). A class is a shape with its own texture, but colours are drawn independently of
the class, so colour never gives the class away, and background clutter (lines, arcs, colour noise) makes edges
alone unreliable: the net has to learn both what and where. Labels are exact (the masks that painted the image),
with VOC's ignore label 255 on a band straddling every boundary between two labels.

Every image is drawn from its own generator seeded by (seed, split, index), so any one image can be regenerated
alone, and the dataset does not depend on how many images are made or in what order.

Layout written by `write_voc(root, ...)`, the one VOC's data layer reads:
    root/JPEGImages/{id}.jpg              RGB, JPEG quality 95 without chroma subsampling
    root/SegmentationClass/{id}.png       palette PNG: class index per pixel, 255 = ignore (VOC's palette)
    root/ImageSets/Segmentation/{train,val}.txt
"""
import os

import numpy
from PIL import Image

from solver.palette import save_label, voc_palette

CLASSES = ("background", "disk", "square", "triangle", "ring", "cross", "blob")
NUM_CLASSES = len(CLASSES)
IGNORE = 255
RADIUS = (0.10, 0.30)            # object radius, as a fraction of the image side
SPLITS = {"train": 0, "val": 1, "crops": 2, "crops_val": 3}


PALETTE = voc_palette()


# ---------------------------------------------------------------- shapes and textures
# Each shape is a mask over object-frame coordinates (u, v), in units of the object's radius, rotated by a
# random angle; the texture is a value t in [0, 1] that blends the object's two random colours.

def _shape_mask(cls, u, v, rng):
    rho = numpy.hypot(u, v)
    if cls == 1:                                     # disk
        return rho <= 1.0
    if cls == 2:                                     # square (area close to the disk's)
        return numpy.maximum(abs(u), abs(v)) <= 0.85
    if cls == 3:                                     # equilateral triangle inscribed in the unit circle
        edges = [numpy.cos(a) * u + numpy.sin(a) * v for a in (numpy.pi / 2, 7 * numpy.pi / 6, 11 * numpy.pi / 6)]
        return numpy.maximum(numpy.maximum(edges[0], edges[1]), edges[2]) <= 0.5 * 1.15
    if cls == 4:                                     # ring
        return (rho <= 1.0) & (rho >= rng.uniform(0.45, 0.6))
    if cls == 5:                                     # cross
        w = rng.uniform(0.28, 0.38)
        return ((abs(u) <= w) & (abs(v) <= 1.0)) | ((abs(v) <= w) & (abs(u) <= 1.0))
    if cls == 6:                                     # blob: a wobbly outline
        phi = numpy.arctan2(v, u)
        p1, p2 = rng.uniform(0, 2 * numpy.pi, 2)
        radius = 0.85 + 0.15 * numpy.sin(3 * phi + p1) + 0.08 * numpy.sin(5 * phi + p2)
        return rho <= radius
    raise ValueError(f"synthetic: no shape for class {cls}")


def _texture(cls, u, v, rng):
    """Each class its own texture family, at a random frequency (in half-cycles per radius)."""
    f = rng.uniform(2.5, 4.0)
    if cls == 1:                                     # disk: a grid of thin lines
        return ((numpy.sin(u * f * numpy.pi) > 0.7) | (numpy.sin(v * f * numpy.pi) > 0.7)).astype(numpy.float32)
    if cls == 2:                                     # square: checkerboard
        return ((numpy.floor(u * f) + numpy.floor(v * f)) % 2).astype(numpy.float32)
    if cls == 3:                                     # triangle: dots
        return (numpy.sin(u * f * numpy.pi) * numpy.sin(v * f * numpy.pi) > 0.35).astype(numpy.float32)
    if cls == 4:                                     # ring: plain, with fine grain
        return rng.uniform(0, 0.35, u.shape)
    if cls == 5:                                     # cross: stripes
        return (numpy.sin(u * f * numpy.pi) > 0).astype(numpy.float32)
    if cls == 6:                                     # blob: speckle, random cells of a tenth of the radius
        table = rng.random((64, 64)) > 0.5
        return table[numpy.floor(u * 10).astype(int) % 64, numpy.floor(v * 10).astype(int) % 64].astype(numpy.float32)
    raise ValueError(f"synthetic: no texture for class {cls}")


def _object_layer(rng, yy, xx, cls, cy, cx, radius):
    """(mask, colour image) of one object of class `cls` centred at (cy, cx)."""
    angle = rng.uniform(0, 2 * numpy.pi)
    c, s = numpy.cos(angle), numpy.sin(angle)
    dy, dx = (yy - cy) / radius, (xx - cx) / radius
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask = _shape_mask(cls, u, v, rng)
    t = _texture(cls, u, v, rng)
    c1 = rng.uniform(0, 255, 3)
    c2 = c1 + numpy.where(c1 < 128, 1, -1) * rng.uniform(60, 120, 3)    # a contrasting colour: texture shows
    colour = c1 + t[..., None] * (c2 - c1)
    return mask, colour


# ---------------------------------------------------------------- backgrounds and clutter

def _smooth_noise(rng, size, cells, channels):
    """Colour noise that varies smoothly: a coarse random grid, bilinearly upsampled."""
    grid = rng.uniform(0, 1, (cells + 1, cells + 1, channels))
    pos = numpy.linspace(0, cells, size)
    i = numpy.minimum(pos.astype(int), cells - 1)
    f = (pos - i)[:, None]
    rows = grid[i] * (1 - f[..., None]) + grid[i + 1] * f[..., None]          # (size, cells+1, C)
    cols = rows[:, i] * (1 - f.T[..., None]) + rows[:, i + 1] * f.T[..., None]
    return cols


def _background(rng, yy, xx, size):
    base = rng.uniform(40, 215, 3)
    img = base + (_smooth_noise(rng, size, int(rng.integers(2, 6)), 3) - 0.5) * rng.uniform(60, 140)
    for _ in range(int(rng.integers(2, 6))):        # clutter: lines and arcs in random colours
        colour = rng.uniform(0, 255, 3)
        width = rng.uniform(0.5, 1.6)
        if rng.random() < 0.5:
            p, q = rng.uniform(-0.1, 1.1, (2, 2)) * size
            d = q - p
            t = numpy.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(d @ d, 1e-6), 0, 1)
            dist = numpy.hypot(yy - p[0] - t * d[0], xx - p[1] - t * d[1])
            mark = dist <= width
        else:
            cy, cx = rng.uniform(0, 1, 2) * size
            r = rng.uniform(0.1, 0.5) * size
            a0, span = rng.uniform(0, 2 * numpy.pi), rng.uniform(0.5, 1.6) * numpy.pi
            phi = (numpy.arctan2(yy - cy, xx - cx) - a0) % (2 * numpy.pi)
            mark = (abs(numpy.hypot(yy - cy, xx - cx) - r) <= width) & (phi <= span)
        img[mark] = colour
    return img


def _blur(img):
    """A light [1 2 1]/4 blur along both axes, as a camera's softness (edges stay within the ignore band)."""
    p = numpy.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    img = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    return (img[:, :-2] + 2 * img[:, 1:-1] + img[:, 2:]) / 4


# ---------------------------------------------------------------- scenes

def render_scene(rng, size, objects):
    """Paint `objects` [(class, cy, cx, radius), ...] in order over a cluttered background.

    Returns (image uint8 H x W x 3, label uint8 H x W with classes only, no ignore band).
    """
    yy, xx = numpy.mgrid[0:size, 0:size].astype(numpy.float64)
    img = _background(rng, yy, xx, size)
    label = numpy.zeros((size, size), numpy.uint8)
    for cls, cy, cx, radius in objects:
        mask, colour = _object_layer(rng, yy, xx, cls, cy, cx, radius)
        img[mask] = colour[mask]
        label[mask] = cls
    img = _blur(img) + rng.normal(0, rng.uniform(3, 10), img.shape)
    return numpy.clip(numpy.rint(img), 0, 255).astype(numpy.uint8), label


def ignore_band(label, width=2):
    """Mark with 255 every pixel that has a differently labelled pixel within `width // 2` (Chebyshev distance).

    For width 2 that is each pixel with a different label among its 8 neighbours: a band 2 pixels wide that
    straddles every boundary, as VOC's void outlines do. The image edge is not a boundary.
    """
    r = width // 2
    if r == 0:
        return label.copy()
    h, w = label.shape
    p = numpy.pad(label, r, mode="edge")
    differs = numpy.zeros(label.shape, bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            differs |= p[dy:dy + h, dx:dx + w] != label
    out = label.copy()
    out[differs] = IGNORE
    return out


def _rng(seed, split, index):
    return numpy.random.default_rng([seed, SPLITS[split], index])


def make_image(seed, split, index, size=96, max_objects=4, band=2, radius=RADIUS):
    """One segmentation example: (image H x W x 3 uint8, label H x W uint8 with the ignore band, raw label)."""
    rng = _rng(seed, split, index)
    objects = []
    lo, hi = radius
    for _ in range(int(rng.integers(1, max_objects + 1))):
        radius = rng.uniform(lo, hi) * size
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        objects.append((int(rng.integers(1, NUM_CLASSES)), cy, cx, radius))
    image, raw = render_scene(rng, size, objects)
    return image, ignore_band(raw, band), raw


def make_crop(seed, split, index, size=72, scale=96, radius=RADIUS):
    """One classification example: an object centred in a size x size crop (scaled as in `scale`-pixel images),
    painted last, over at most one other object; returns (image H x W x 3 uint8, class in 0..5 (class index - 1))."""
    rng = _rng(seed, split, index)
    cls = int(rng.integers(1, NUM_CLASSES))
    objects = []
    for _ in range(int(rng.integers(0, 2))):
        objects.append((int(rng.integers(1, NUM_CLASSES)), *(rng.uniform(0, 1, 2) * size),
                        rng.uniform(*radius) * scale))
    jitter = rng.uniform(-0.05, 0.05, 2) * size
    objects.append((cls, size / 2 + jitter[0], size / 2 + jitter[1], rng.uniform(*radius) * scale))
    image, _ = render_scene(rng, size, objects)
    return image, cls - 1


# ---------------------------------------------------------------- writing

def image_id(split, index):
    return f"{split}_{index:05d}"


def write_voc(root, seed=0, n_train=1500, n_val=200, size=96, band=2, max_objects=4, radius=RADIUS, progress=None):
    """Write the train and val splits under `root` in VOC's layout; returns {split: [ids]}.

    Images already present are kept as they are (the data are a function of seed, split, index and size,
    recorded in root/synthetic.txt; a root made with other settings is an error rather than silently mixed).
    """
    stamp = f"seed {seed} size {size} band {band} objects {max_objects} radius {radius[0]:g}-{radius[1]:g}\n"
    stamp_path = os.path.join(root, "synthetic.txt")
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if f.read() != stamp:
                raise ValueError(f"synthetic: {root} holds data made with other settings ({stamp_path}); "
                                 f"choose another folder or delete it")
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    ids = {}
    for split, n in (("train", n_train), ("val", n_val)):
        ids[split] = [image_id(split, i) for i in range(n)]
        missing = [i for i, name in enumerate(ids[split])
                   if not (os.path.exists(os.path.join(root, "JPEGImages", name + ".jpg"))
                           and os.path.exists(os.path.join(root, "SegmentationClass", name + ".png")))]
        done = n - len(missing)
        for _ in _parallel(_write_example, [(root, seed, split, i, size, max_objects, band, radius)
                                            for i in missing]):
            done += 1
            if progress:
                progress(split, done, n)
        with open(os.path.join(root, "ImageSets", "Segmentation", split + ".txt"), "w") as f:
            f.write("".join(name + "\n" for name in ids[split]))
    return ids


def _write_example(root, seed, split, index, size, max_objects, band, radius):
    name = image_id(split, index)
    image, label, _ = make_image(seed, split, index, size, max_objects, band, radius)
    Image.fromarray(image).save(os.path.join(root, "JPEGImages", name + ".jpg"), quality=95, subsampling=0)
    save_label(label, os.path.join(root, "SegmentationClass", name + ".png"))


def _parallel(fn, jobs, min_jobs=64):
    """fn(*job) for every job, in worker processes when there are many (every item is a function of its own
    arguments alone, so the data do not depend on how they are shared out); yields the results in order.
    Workers are spawned, not forked: the parent may already run BLAS threads. Spawning re-imports the main
    script, so a main read from standard input (no file to re-import) works serially."""
    import sys
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    workers = min(os.cpu_count() or 1, 16)
    if workers < 2 or len(jobs) < min_jobs or (main_file and not os.path.exists(main_file)):
        for job in jobs:
            yield fn(*job)
        return
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, *zip(*jobs), chunksize=max(1, len(jobs) // (8 * workers)))


def make_crops(seed, split, n, size=72, scale=96, radius=RADIUS):
    """n classification crops: (images N x H x W x 3 uint8, labels N int)."""
    images = numpy.empty((n, size, size, 3), numpy.uint8)
    labels = numpy.empty(n, numpy.int64)
    for i in range(n):
        images[i], labels[i] = make_crop(seed, split, i, size, scale, radius)
    return images, labels


def write_crops(root, split, seed=0, n=3000, size=72, scale=96, radius=RADIUS, shard=500, progress=None):
    """Write n classification crops as HDF5 files for the HDF5Data layer; returns the list file's path.
    split names the random stream: "crops" and "crops_val" (the segmentation splits' own are "train" and "val").

    Each file root/{split}_{k}.h5 holds up to `shard` rows (HDF5Data keeps one file in memory at a time):
    'data' N x 3 x H x W uint8, BGR as Caffe's data layers give images, and 'label' N (class index - 1).
    root/{split}.txt lists the files by name (HDF5Data finds them beside the list).
    """
    os.makedirs(root, exist_ok=True)
    starts = list(range(0, n, shard))
    names = []
    for name in _parallel(_write_crop_shard, [(root, split, k, start, min(shard, n - start), seed, size, scale,
                                               radius) for k, start in enumerate(starts)], min_jobs=2):
        names.append(name)
        if progress:
            progress(split, min(len(names) * shard, n), n)
    path = os.path.join(root, f"{split}.txt")
    with open(path, "w") as f:
        f.write("".join(name + "\n" for name in names))
    return path


def _write_crop_shard(root, split, k, start, count, seed, size, scale, radius):
    import h5py                               # imported here: only the classifier's data needs it
    images = numpy.empty((count, size, size, 3), numpy.uint8)
    labels = numpy.empty(count, numpy.float32)
    for i in range(count):
        images[i], labels[i] = make_crop(seed, split, start + i, size, scale, radius)
    name = f"{split}_{k}.h5"
    tmp = os.path.join(root, name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("data", data=images[..., ::-1].transpose(0, 3, 1, 2))
        f.create_dataset("label", data=labels)
    os.replace(tmp, os.path.join(root, name))
    return name

"""Label colours: the PASCAL VOC palette for any number of classes, colouring, overlays, label PNGs, and
decoding a colour PNG back to class indices (cf. the FCN reference vis.py).

VOC's palette spreads the bits of a class index over the colour channels, three bits per round from the top
bit down: 1 -> (128, 0, 0), 2 -> (0, 128, 0), 15 -> (192, 128, 128), 255 (void) -> (224, 224, 192). Eight
rounds cover 2**24 classes with distinct colours.
"""
import numpy
from PIL import Image

MAX_CLASSES = 2 ** 24


def voc_palette(n=256):
    """An n x 3 uint8 array: row k is class k's colour in the VOC palette."""
    if not 0 < n <= MAX_CLASSES:
        raise ValueError(f"a palette needs between 1 and {MAX_CLASSES} entries, got {n}")
    ids = numpy.arange(n, dtype=numpy.int64)
    palette = numpy.zeros((n, 3), dtype=numpy.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(numpy.uint8)


def colorize(label, palette=None):
    """H x W class indices -> H x W x 3 uint8 colours (the reference's color_seg)."""
    label = numpy.asarray(label).astype(numpy.int64)
    palette = voc_palette(max(256, int(label.max()) + 1) if label.size else 256) if palette is None else palette
    if label.size and (label.min() < 0 or label.max() >= len(palette)):
        raise ValueError(f"label values span {label.min()}..{label.max()}, outside the palette's "
                         f"{len(palette)} entries")
    return numpy.asarray(palette, dtype=numpy.uint8)[label]


def overlay(image, label, palette=None, alpha=0.5):
    """Blend the label's colours over an H x W x 3 RGB image where label > 0 (the reference's vis_seg)."""
    image = numpy.asarray(image)
    label = numpy.asarray(label)
    if image.shape[:2] != label.shape:
        raise ValueError(f"the image is {image.shape[:2]} but the label is {label.shape}")
    colours = colorize(label, palette).astype(numpy.float32)
    vis = image.astype(numpy.float32)
    mask = label > 0
    vis[mask] = (1 - alpha) * vis[mask] + alpha * colours[mask]
    return vis.round().clip(0, 255).astype(numpy.uint8)


def label_image(label, palette=None):
    """A PIL image of class indices: mode 'P' with the palette (pixel values are the indices, and viewers
    show the colours) for up to 256 classes; a 16-bit grayscale image of the indices beyond that."""
    label = numpy.asarray(label)
    if label.size and (label.min() < 0 or label.max() >= 65536):
        raise ValueError(f"label values span {label.min()}..{label.max()}; a PNG label holds 0..65535")
    if not label.size or label.max() < 256:
        im = Image.fromarray(label.astype(numpy.uint8), mode="P")
        palette = voc_palette(256) if palette is None else numpy.asarray(palette, dtype=numpy.uint8)[:256]
        im.putpalette(palette.ravel().tolist())
        return im
    return Image.fromarray(label.astype(numpy.uint16))


def save_label(label, path, palette=None):
    label_image(label, palette).save(path)
    return path


def decode_color(rgb, palette=None):
    """H x W x 3 colours -> H x W class indices, by exact palette match (default: VOC's, 255 = void).

    Raises ValueError naming the colours that are not in the palette (e.g. a JPEG or a smoothed image).
    """
    rgb = numpy.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"decode_color needs an H x W x 3 colour image, got shape {rgb.shape}")
    palette = voc_palette(256) if palette is None else numpy.asarray(palette, dtype=numpy.uint8)
    key = lambda c: (c[..., 0].astype(numpy.int64) << 16) | (c[..., 1].astype(numpy.int64) << 8) | c[..., 2]
    keys, pal_keys = key(rgb[..., :3]), key(palette)
    order = numpy.argsort(pal_keys, kind="stable")       # equal colours: the lowest index wins
    sorted_keys = pal_keys[order]
    pos = numpy.searchsorted(sorted_keys, keys).clip(0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == keys
    if not found.all():
        unknown = numpy.unique(keys[~found])
        shown = ", ".join(str(((k >> 16) & 255, (k >> 8) & 255, k & 255)) for k in unknown[:5].tolist())
        raise ValueError(f"{int((~found).sum())} pixel(s) have {len(unknown)} colour(s) not in the palette, e.g. "
                         f"{shown}; a label must use palette colours exactly (no JPEG, no smoothing)")
    return order[pos].astype(numpy.int64)


def read_color_label(path, palette=None):
    """A colour label file decoded to class indices ('P' images are read as their indices directly)."""
    im = Image.open(path)
    if im.mode == "P":
        return numpy.array(im).astype(numpy.int64)
    try:
        return decode_color(numpy.array(im.convert("RGB")), palette)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None

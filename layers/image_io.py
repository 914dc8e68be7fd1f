"""Images as Caffe's OpenCV calls give them, on Pillow and numpy: cv::imread / cv::imdecode and cv::resize.

`read(source, mode)` decodes a file path or encoded bytes to an H x W x C uint8 array in OpenCV's channel order
(BGR, BGRA), as ImageData (ReadImageToCVMat) and Data (DecodeDatumToCVMat) read them. The modes are OpenCV's
flags: "color" (IMREAD_COLOR: 3 channels, EXIF orientation applied), "gray" (IMREAD_GRAYSCALE: 1 channel) and
"unchanged" (IMREAD_UNCHANGED: the file's own channels, no EXIF rotation). Where OpenCV's codecs convert colour
to grey themselves, so does this module: libjpeg decodes JPEG straight to its luma (Pillow's draft mode does the
same), libpng truncates 0.299 R + 0.587 G + 0.114 B in 15-bit fixed point, other formats go through cvtColor's
14-bit rounding. 16-bit samples keep their high byte (libpng's strip_16), except in "unchanged" mode, where
16-bit grey stays uint16 as OpenCV leaves it. Known differences: Pillow gives 16-bit colour PNGs as 8 bits, so
their grey may differ from OpenCV's by one level and "unchanged" gives 8 bits, not OpenCV's 16; WebP's grey may
differ by one level.

`resize_linear(image, width, height)` is cv::resize(..., INTER_LINEAR) on uint8 images, bit for bit as OpenCV's
vectorized x86 path computes it: 11-bit weights; columns clamped at the borders, rows read clamped but weighted
as computed; each horizontal sum shifted right by 4, times its row weight keeping the high 16 bits, and the two
rows' terms added and rounded off by 2 bits. tests/layers/test_image_io.py checks both against cv2.
"""
import io
import os

import numpy

_COEF_SCALE = 2048                  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)


def read(source, mode="color"):
    """Decode `source` (a path or bytes) as cv::imread/imdecode with `mode`; OSError when it cannot be."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise OSError(f"no such file: {source}")
    try:
        im = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        kind = im.format                    # exif_transpose's copy forgets it
        if kind == "JPEG" and mode != "unchanged":
            im.draft("L" if mode == "gray" else "RGB", im.size)     # libjpeg's own colour conversion
        if mode != "unchanged":
            im = ImageOps.exif_transpose(im)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise OSError(f"cannot decode the image ({e})") from None
    if im.mode.startswith("I"):             # 16-bit grey: the high byte (32-bit "I" holds 16-bit PNG samples)
        wide = numpy.asarray(im).astype(numpy.uint32)
        grey = (wide >> 8).astype(numpy.uint8) if mode != "unchanged" else wide.astype(numpy.uint16)
        return grey[:, :, None] if mode != "color" else numpy.repeat(grey[:, :, None], 3, axis=2)
    if mode == "gray":
        if im.mode in ("L", "LA", "1"):
            return numpy.asarray(im.convert("L"))[:, :, None]
        rgb = numpy.asarray(im.convert("RGB")).astype(numpy.int32)
        r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
        if kind == "PNG":              # libpng's png_do_rgb_to_gray: truncated; grey pixels pass as they are
            grey = numpy.where((r == g) & (g == b), r, (9797 * r + 19234 * g + 3737 * b) >> 15)
        else:                               # cvtColor(BGR2GRAY) on 8 bits
            grey = (4899 * r + 9617 * g + 1868 * b + (1 << 13)) >> 14
        return grey.astype(numpy.uint8)[:, :, None]
    if mode == "unchanged" and im.mode in ("L", "1"):
        return numpy.asarray(im.convert("L"))[:, :, None]
    alpha = mode == "unchanged" and (im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info)
    rgb = numpy.asarray(im.convert("RGBA" if alpha else "RGB"))
    return rgb[:, :, [2, 1, 0, 3] if alpha else [2, 1, 0]]


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the cause."""


def open_image(path, max_pixels=None, limit_hint=""):
    """Open image `path` with Pillow (its header only), refusing with an ImageError that names the file what
    cannot be read: a missing file, a folder, an empty file, one that is no image, or one of more than
    `max_pixels` pixels (default: Pillow's decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS; `limit_hint`
    says how to raise it, with {pixels} for the image's count)."""
    from PIL import Image, UnidentifiedImageError
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder, not an image")
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None              # the limit is checked below, with a message that says it
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (no format Pillow reads: PNG, JPEG, BMP, TIFF, ...)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot be read ({e.strerror or e})") from None
    except Exception as e:                     # a damaged header: SyntaxError, ValueError, struct.error, ...
        if isinstance(e, MemoryError):
            raise
        raise ImageError(f"{path}: not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    width, height = im.size
    if limit and width * height > limit:
        im.close()
        raise ImageError(f"{path}: {width} x {height} = {width * height:,} pixels, more than the limit of "
                         f"{int(limit):,} (a guard against decompression bombs); "
                         + (limit_hint or "raise PIL.Image.MAX_IMAGE_PIXELS to read it").format(pixels=width * height))
    return im


def decode_rgb(im, path):
    """The H x W x 3 uint8 RGB pixels of an image opened by open_image. 16-bit samples keep their high byte, as
    OpenCV's imread reads them (not clipped to white); floating-point images are refused. A truncated or damaged
    file is an ImageError naming it."""
    try:
        im.load()
    except Exception as e:                     # OSError "image file is truncated", SyntaxError, zlib errors, ...
        if isinstance(e, MemoryError):
            raise
        raise ImageError(f"{path}: the image is truncated or damaged ({e})") from None
    if im.mode.startswith("I"):                # 16-bit grey ("I;16*", or "I" holding 16-bit PNG samples)
        wide = numpy.asarray(im)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise ImageError(f"{path}: 32-bit integer samples (up to {int(wide.max())}); images must have 8 or "
                             f"16 bits per sample")
        grey = (wide.astype(numpy.uint32) >> 8).astype(numpy.uint8)
        return numpy.repeat(grey[:, :, None], 3, axis=2)
    if im.mode == "F":
        raise ImageError(f"{path}: floating-point samples (mode F); save it as an 8- or 16-bit image")
    return numpy.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def read_rgb(path, max_pixels=None, limit_hint=""):
    """Image file `path` as H x W x 3 uint8 RGB (open_image, then decode_rgb); ImageError naming the file."""
    with open_image(path, max_pixels, limit_hint) as im:
        return decode_rgb(im, path)


def check_decodes(path, max_pixels=None):
    """Decode `path` to find truncated or damaged files before they are needed (JPEGs at 1/8 scale: the whole
    stream is still read); ImageError naming the file. Returns the (width, height) of the image."""
    with open_image(path, max_pixels) as im:
        size = im.size
        if im.format == "JPEG":
            im.draft(im.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
        decode_rgb(im, path)
        return size


def _taps(size, new_size, clamp):
    """Source indices and 11-bit weights of OpenCV's linear interpolation along one axis."""
    f = ((numpy.arange(new_size) + 0.5) * (1.0 / (new_size / size)) - 0.5).astype(numpy.float32)
    s = numpy.floor(f).astype(numpy.int64)
    f = f - s.astype(numpy.float32)
    if clamp:                               # columns: past an edge, the edge pixel with weight 1
        outside = (s < 0) | (s >= size - 1)
        f[outside] = 0
        s = numpy.clip(s, 0, size - 1)
    w0 = numpy.rint((numpy.float32(1) - f) * numpy.float32(_COEF_SCALE)).astype(numpy.int32)
    w1 = numpy.rint(f * numpy.float32(_COEF_SCALE)).astype(numpy.int32)
    return numpy.clip(s, 0, size - 1), numpy.clip(s + 1, 0, size - 1), w0, w1


def resize_linear(image, width, height):
    """cv::resize(image, Size(width, height)) with INTER_LINEAR, for an H x W x C (or H x W) uint8 array."""
    pixels = image if image.ndim == 3 else image[:, :, None]
    h, w = pixels.shape[:2]
    if (h, w) == (height, width):
        return image.copy()
    x0, x1, a0, a1 = _taps(w, width, clamp=True)
    y0, y1, b0, b1 = _taps(h, height, clamp=False)
    p = pixels.astype(numpy.int32)
    rows = (p[:, x0] * a0[:, None] + p[:, x1] * a1[:, None]) >> 4          # H x width x C
    out = (rows[y0] * b0[:, None, None] >> 16) + (rows[y1] * b1[:, None, None] >> 16)
    out = numpy.clip((out + 2) >> 2, 0, 255).astype(numpy.uint8)
    return out if image.ndim == 3 else out[:, :, 0]

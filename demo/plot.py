"""Line charts drawn with Pillow (matplotlib is not a dependency): panels side by side, one line per series.

line_chart(panels, path): panels is a list of (title, x label, {series name: [(x, y), ...]}); every panel shares
the y range and the colours, and the first holds the legend. chart() draws the same without saving, and stack()
puts charts one above the other in one image.
"""
import math

from PIL import Image, ImageDraw

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))
WIDTH, HEIGHT = 360, 260                     # one panel
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 22, 38    # margins inside a panel: tick labels left and below


def nice_ticks(low, high, count=5):
    """About `count` round values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10) if m * power >= raw), default=10 * power)
    first = math.ceil(low / step - 1e-9) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _label(value):
    return f"{value:g}" if abs(value) < 1e4 else f"{value:.0e}"


def line_chart(panels, path, y_label=""):
    """Draw the panels side by side into a PNG at `path`; returns the image."""
    image = chart(panels, y_label)
    image.save(path)
    return image


def stack(images, path):
    """The images one above the other (left-aligned, white behind), saved as a PNG at `path`; returns it."""
    image = Image.new("RGB", (max(im.width for im in images), sum(im.height for im in images)), "white")
    y = 0
    for im in images:
        image.paste(im, (0, y))
        y += im.height
    image.save(path)
    return image


def chart(panels, y_label="", markers=False, colours=COLOURS, legend=True):
    """The panels side by side as an image (line_chart's); markers: a dot at every point as well; colours: the
    series', in order; legend: in the first panel (say what a lone series is in the titles instead)."""
    ys = [y for _, _, series in panels for points in series.values() for _, y in points]
    y_low, y_high = min(ys), max(ys)
    pad = 0.05 * (y_high - y_low or 1)
    y_low, y_high = y_low - pad, y_high + pad
    image = Image.new("RGB", (WIDTH * len(panels), HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    names = list(dict.fromkeys(name for _, _, series in panels for name in series))
    for k, (title, x_label, series) in enumerate(panels):
        x0, y0 = k * WIDTH + LEFT, TOP
        x1, y1 = (k + 1) * WIDTH - RIGHT, HEIGHT - BOTTOM
        x_high = max(x for points in series.values() for x, _ in points) or 1

        def at(x, y):
            return (x0 + (x1 - x0) * x / x_high, y1 - (y1 - y0) * (y - y_low) / (y_high - y_low))
        for tick in nice_ticks(y_low, y_high):
            _, ty = at(0, tick)
            draw.line([(x0, ty), (x1, ty)], fill=(230, 230, 230))
            draw.text((x0 - 4, ty), _label(tick), fill="black", anchor="rm")
        for tick in nice_ticks(0, x_high):
            tx, _ = at(tick, y_low)
            if tick <= x_high:
                draw.line([(tx, y0), (tx, y1)], fill=(230, 230, 230))
                draw.text((tx, y1 + 4), _label(tick), fill="black", anchor="mt")
        draw.rectangle([x0, y0, x1, y1], outline="black")
        draw.text(((x0 + x1) / 2, 4), title, fill="black", anchor="mt")
        draw.text(((x0 + x1) / 2, HEIGHT - 4), x_label, fill="black", anchor="mb")
        if y_label and k == 0:
            draw.text((4, 4), y_label, fill="black")
        for name, points in series.items():
            colour = colours[names.index(name) % len(colours)]
            draw.line([at(x, y) for x, y in points], fill=colour, width=2)
            if markers:
                for x, y in points:
                    px, py = at(x, y)
                    draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        if k == 0 and legend:
            for j, name in enumerate(names):
                colour = colours[j % len(colours)]
                ly = y0 + 10 + 14 * j
                draw.line([(x1 - 90, ly), (x1 - 70, ly)], fill=colour, width=2)
                draw.text((x1 - 65, ly), name, fill="black", anchor="lm")
    return image

"""python -m solver.infer and python -m solver.score under bad input and faults, as a user runs them: never
writing over an input or (unless asked) an earlier output, one `error: ...` line naming the file with exit status
2 (130 on Ctrl-C) and never a traceback, and whatever was done before an error kept whole."""
import os
import pathlib
import resource
import signal
import struct
import subprocess
import sys
import zlib

import numpy
import pytest
from PIL import Image

from layers import Net
from solver import cli, infer, score
from tests.conftest import FIXTURES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = """name: "tiny"
layer {{ name: "input" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: {h} dim: {w} }} }} }}
{extra}layer {{ name: "score" type: "Convolution" bottom: "{bottom}" top: "score"
  convolution_param {{ num_output: 3 kernel_size: 1 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
"""
SLOW = '''import time
from layers import caffe_compat as caffe


class Slow(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        time.sleep(0.4)
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        pass
'''


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1")


def command(module, *args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=60, **kwargs)


def one_error(stderr, *names):
    """The stderr of a refused command: no traceback, and last one `error: ...` naming each of `names` (a data
    layer's validation lists each bad file on a line of its own after it)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    starts = [k for k, text in enumerate(lines) if text.startswith("error: ")]
    assert starts and all(text.startswith("  ") for text in lines[starts[-1] + 1:]), stderr
    line = " ".join(lines[starts[-1]:])
    for name in names:
        assert str(name) in line, line
    return line


def call(main, capsys, *args):
    """The command in this process (solver.cli.run, what `python -m` runs): (exit status, its error line)."""
    status = cli.run(main, [str(a) for a in args])
    err = capsys.readouterr().err
    return status, (one_error(err) if status else err)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny deploy net with weights, and images: photo.png, a.png, a.jpg and sub/a.png."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "deploy.prototxt").write_text(DEPLOY.format(h=4, w=4, extra="", bottom="data"))
    Net(str(root / "deploy.prototxt")).save(str(root / "w.caffemodel"))
    rng = numpy.random.default_rng(4)
    (root / "sub").mkdir()
    for name in ("photo.png", "a.png", "a.jpg", "sub/a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=numpy.uint8)).save(root / name)
    return root


def snapshot_of(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def bomb(path, side=100000):
    """A PNG whose header says side x side pixels: open() sees the size without decoding anything."""
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def truncated(source, path):
    data = source.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


# -------------------------------------------------------------------------------- infer: nothing overwritten
def test_infer_never_writes_over_inputs_and_names_outputs_apart(tiny, tmp_path, capsys):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    for name in ("photo.png", "a.png", "a.jpg", "sub/a.png"):
        (work / name).write_bytes((tiny / name).read_bytes())
    inputs = snapshot_of(work)
    # --out . in the folder of the photo: its label may not replace it; a.png, a.jpg and sub/a.png share a name
    done = command("solver.infer", tiny / "deploy.prototxt", tiny / "w.caffemodel", "photo.png", "a.png", "a.jpg",
                   "sub/a.png", "./photo.png", "--out", ".", cwd=work)
    assert done.returncode == 0, done.stderr
    assert all(snapshot_of(work)[k] == v for k, v in inputs.items())          # every input intact
    made = sorted(str(p) for p in set(snapshot_of(work)) - set(inputs))
    assert made == ["a_jpg.png", "a_jpg_overlay.jpg", "a_png.png", "a_png_2.png", "a_png_2_overlay.jpg",
                    "a_png_overlay.jpg", "photo_2.png", "photo_2_overlay.jpg"]
    assert done.stdout.count("photo.png:") == 1                              # the same file twice: once
    # the default output folder is not the working directory
    os.chdir(work)
    assert call(infer.main, capsys, tiny / "deploy.prototxt", tiny / "w.caffemodel", "photo.png")[0] == 0
    assert (work / "infer_out" / "photo.png").is_file() and (work / "infer_out" / "photo_overlay.jpg").is_file()
    # an existing output is refused before anything runs, and kept; --overwrite replaces it
    before = snapshot_of(work)
    again = command("solver.infer", tiny / "deploy.prototxt", tiny / "w.caffemodel", "photo.png", cwd=work)
    assert again.returncode == 2 and not again.stdout
    one_error(again.stderr, "infer_out/photo.png", "exist", "--overwrite")
    assert snapshot_of(work) == before
    (work / "infer_out" / "photo.png").write_bytes(b"old")
    status, _ = call(infer.main, capsys, tiny / "deploy.prototxt", tiny / "w.caffemodel", "photo.png", "--overwrite")
    assert status == 0 and Image.open(work / "infer_out" / "photo.png").size == (7, 6)
    # even with --overwrite, an input is never an output
    before = snapshot_of(work / "infer_out")
    status, _ = call(infer.main, capsys, tiny / "deploy.prototxt", tiny / "w.caffemodel", "infer_out/photo.png",
                     "infer_out/photo_overlay.jpg", "--out", "infer_out", "--overwrite")
    assert status == 0
    after = snapshot_of(work / "infer_out")
    assert all(after[k] == v for k, v in before.items())
    assert {str(p) for p in set(after) - set(before)} == {"photo_2.png", "photo_2_overlay.jpg", "photo_overlay.png",
                                                          "photo_overlay_overlay.jpg"}


@pytest.fixture(autouse=True)
def _cwd():
    here = os.getcwd()
    yield
    os.chdir(here)


# -------------------------------------------------------------------------------- infer: bad input
def test_infer_bad_inputs_give_one_line_errors(tiny, tmp_path, capsys):
    d, w = tiny / "deploy.prototxt", tiny / "w.caffemodel"
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "folder.png").mkdir()
    truncated(FIXTURES / "voc" / "JPEGImages" / "2007_000129.jpg", tmp_path / "cut.jpg")
    big = bomb(tmp_path / "big.png")
    (tmp_path / "unknown.prototxt").write_text(d.read_text().replace('"Convolution"', '"Convolutio"'))
    (tmp_path / "comments.prototxt").write_text("# nothing but a comment\n")
    (tmp_path / "bom.prototxt").write_bytes(b"\xef\xbb\xbf" + d.read_bytes())
    (tmp_path / "out.txt").write_text("mine")
    good = tiny / "a.png"
    cases = [
        ((d, w, tmp_path / "missing.png"), ["missing.png", "no such file"]),
        ((d, w, tmp_path / "empty.png"), ["empty.png", "empty (0 bytes)"]),
        ((d, w, tmp_path / "text.png"), ["text.png", "not an image"]),
        ((d, w, tmp_path / "folder.png"), ["folder.png", "folder"]),
        ((d, w, tmp_path / "cut.jpg"), ["cut.jpg", "truncated"]),
        ((d, w, big), ["big.png", "10,000,000,000 pixels", "89,478,485", "--max-pixels 10000000000"]),
        ((d, w, big, "--max-pixels", "20000000000"), ["Input layer 'input'", "1 x 3 x 100000 x 100000", "bytes"]),
        ((d, tmp_path / "missing.caffemodel", good), ["weights", "missing.caffemodel", "no such file"]),
        ((d, tmp_path / "text.png", good), ["text.png", "cannot decode"]),
        ((d, d, good), ["deploy.prototxt", "cannot decode"]),
        ((d, tmp_path, good), ["weights", "is a folder"]),
        ((w, w, good), ["w.caffemodel", "not UTF-8 text"]),
        ((tmp_path / "unknown.prototxt", w, good), ["layer 'score'", "unknown layer type 'Convolutio'"]),
        ((tmp_path / "comments.prototxt", w, good), ["comments.prototxt", "no layers"]),
        ((tmp_path / "bom.prototxt", w, good), ["bom.prototxt:1:1", "U+FEFF", "byte-order mark"]),
        ((d, w, good, "--out", tmp_path / "out.txt"), ["out.txt", "is a file, not a folder"]),
        ((d, w, good, "--layer", "nope"), ["no blob 'nope'"]),
    ]
    for args, words in cases:
        status, line = call(infer.main, capsys, *args, "--out", tmp_path / "o") if "--out" not in args else \
            call(infer.main, capsys, *args)
        assert status == 2, (args, line)
        assert all(word in line for word in words), (words, line)
    assert (tmp_path / "out.txt").read_text() == "mine"
    assert not list((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else True


def test_infer_keeps_what_was_done_before_a_bad_image(tiny, tmp_path):
    bad = truncated(tiny / "photo.png", tmp_path / "cut.png")
    done = command("solver.infer", tiny / "deploy.prototxt", tiny / "w.caffemodel", tiny / "a.png", bad,
                   tiny / "b.png", "--out", tmp_path / "o", cwd=tmp_path)
    assert done.returncode == 2
    one_error(done.stderr, "cut.png", "truncated")
    assert "1 of 3 image(s) done before this" in done.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.png", "a_overlay.jpg"]   # whole, no temp file
    assert Image.open(tmp_path / "o" / "a.png").size == (7, 6)


def test_infer_on_a_full_disk_leaves_no_partial_file(tiny, tmp_path):
    """A file-size limit stands in for a full disk: the label cannot be written; the earlier one it was to replace
    (--overwrite) stays as it was, and no partial or temporary file is left."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.png").write_bytes(b"earlier")
    done = command("solver.infer", tiny / "deploy.prototxt", tiny / "w.caffemodel", tiny / "a.png", "--out",
                   tmp_path / "o", "--overwrite", cwd=tmp_path, preexec_fn=limit)
    assert done.returncode == 2
    one_error(done.stderr, "cannot write", "o/a.png", "File too large")
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["a.png"]
    assert (tmp_path / "o" / "a.png").read_bytes() == b"earlier"


def test_infer_ctrl_c_exits_130_keeping_finished_images(tiny, tmp_path):
    deploy = tmp_path / "slow.prototxt"
    deploy.write_text(DEPLOY.format(h=4, w=4, bottom="slow", extra='layer { name: "slow" type: "Python" '
                                    'bottom: "data" top: "slow" python_param { module: "slow" layer: "Slow" } }\n'))
    (tmp_path / "slow.py").write_text(SLOW)
    images = [tiny / "a.png", tiny / "b.png", tiny / "photo.png", tiny / "sub" / "a.png"]
    proc = subprocess.Popen([sys.executable, "-m", "solver.infer", str(deploy), str(tiny / "w.caffemodel"),
                             *map(str, images), "--out", str(tmp_path / "o")], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()                      # the first image is done
    assert "-> " in first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    one_error(err, "interrupted")
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert {"a.png", "a_overlay.jpg"} <= set(names) and not [n for n in names if ".tmp" in n]
    assert len(names) < 2 * len(images)
    for name in names:
        Image.open(tmp_path / "o" / name).load()       # whole files only


def test_infer_builds_the_deploy_net_at_the_image_size_and_reads_16_bit_images(tiny, tmp_path, capsys):
    huge = tmp_path / "huge.prototxt"                  # declared 1 x 3 x 100000 x 100000: 120 GB if built so
    huge.write_text(DEPLOY.format(h=100000, w=100000, extra="", bottom="data"))
    with pytest.raises(ValueError, match=r"Input layer 'input': a blob of shape 1 x 3 x 100000 x 100000 .*bytes"):
        Net(str(huge))
    grey = numpy.arange(42, dtype=numpy.uint16).reshape(6, 7) * 1500
    Image.fromarray(grey).save(tmp_path / "deep.png")  # 16-bit grey: read as its high byte, not clipped to white
    Image.fromarray((grey >> 8).astype(numpy.uint8)).save(tmp_path / "byte.png")
    status, err = call(infer.main, capsys, huge, tiny / "w.caffemodel", tmp_path / "deep.png", tmp_path / "byte.png",
                       "--out", tmp_path / "o")
    assert status == 0, err
    numpy.testing.assert_array_equal(numpy.array(Image.open(tmp_path / "o" / "deep.png")),
                                     numpy.array(Image.open(tmp_path / "o" / "byte.png")))


# -------------------------------------------------------------------------------- score
@pytest.fixture
def folders(tiny, tmp_path):
    rng = numpy.random.default_rng(6)
    for folder in ("img", "lab", "void"):
        (tmp_path / folder).mkdir()
    for i in "ab":
        Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=numpy.uint8)).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (5, 6), dtype=numpy.uint8)).save(tmp_path / "lab" / f"{i}.png")
        Image.fromarray(numpy.full((5, 6), 255, numpy.uint8)).save(tmp_path / "void" / f"{i}.png")
    (tmp_path / "ids.txt").write_text("a\nb\n")
    return tmp_path


def test_score_refuses_what_it_cannot_score_and_keeps_the_labels(tiny, folders, capsys):
    d, w, t = tiny / "deploy.prototxt", tiny / "w.caffemodel", folders
    labels = snapshot_of(t / "lab")
    done = command("solver.score", d, w, "--images", "img", "--labels", "void", "--split", "ids.txt", cwd=t)
    assert done.returncode == 2 and "nan" not in done.stdout.lower()
    one_error(done.stderr, "nothing to score", "[0, 3)")
    (t / "empty.txt").write_text("\n")
    (t / "bom.txt").write_bytes(b"\xef\xbb\xbfa\nb\n")
    (t / "c.txt").write_text("c\n")
    Image.fromarray(numpy.ones((5, 6), numpy.uint8)).save(t / "img" / "c.png")
    Image.fromarray(numpy.ones((5, 6), numpy.uint8)).convert("RGB").save(t / "lab" / "c.png", format="JPEG")
    (t / "out").mkdir()
    (t / "out" / "a.png").write_bytes(b"earlier")
    base = (d, w, "--images", t / "img", "--labels", t / "lab")
    cases = [
        ((*base, "--split", t / "empty.txt"), ["empty.txt", "lists no ids"]),
        ((*base, "--split", t / "missing.txt"), ["missing.txt", "no such file"]),
        ((*base, "--split", t / "img"), ["img", "is a folder"]),
        ((*base, "--split", t / "c.txt"), ["lab/c.png", "JPEG"]),
        ((d, w, "--images", t / "img", "--labels", t / "nope", "--split", t / "ids.txt"), ["nope", "no such folder"]),
        ((*base, "--split", t / "ids.txt", "--save", t / "lab", "--overwrite"), ["lab/a.png", "one of the inputs"]),
        ((*base, "--split", t / "ids.txt", "--save", t / "out"), ["out/a.png", "exists already", "--overwrite"]),
    ]
    (t / "c2.txt").write_text("a\nzz\n")
    cases.append(((*base, "--split", t / "c2.txt"), ["--images", "'zz'"]))
    for args, words in cases:
        status, line = call(score.main, capsys, *args)
        assert status == 2, (args, line)
        assert all(word in line for word in words), (words, line)
    assert (t / "out" / "a.png").read_bytes() == b"earlier"
    status, err = call(score.main, capsys, *base, "--split", t / "bom.txt", "--save", t / "out", "--overwrite")
    assert status == 0, err                               # a byte-order mark before the first id is skipped
    assert Image.open(t / "out" / "a.png").size == (6, 5)
    huge = t / "huge.prototxt"                            # built at the first image's size, not 100000 x 100000
    huge.write_text(DEPLOY.format(h=100000, w=100000, extra="", bottom="data"))
    assert call(score.main, capsys, huge, *base[1:], "--split", t / "ids.txt")[0] == 0
    (t / "lab" / "b.png").unlink()
    Image.fromarray(numpy.full((5, 6), 7, numpy.uint8)).save(t / "lab" / "b.png")   # 7: not a class of 3
    status, err = call(score.main, capsys, *base, "--split", t / "ids.txt")
    assert status == 0 and "values outside [0, 3) other than 255, which are not scored: 7" in err
    assert snapshot_of(t / "lab").keys() == labels.keys() | {pathlib.Path("c.png")}


def test_score_val_net_validates_images_and_labels_first(tiny, folders, capsys):
    t = folders
    truncated(t / "img" / "b.png", t / "img" / "b.png")
    val = t / "val.prototxt"
    layer = ('layer {{ name: "data" type: "SegFolderData" top: "data" top: "label" python_param {{ param_str: "{{'
             '\'image_dir\': \'img\', \'label_dir\': \'{labels}\', \'split\': \'ids.txt\', \'num_classes\': 3{more}}}" '
             '}} }}\nlayer {{ name: "score" type: "Convolution" bottom: "data" top: "score" '
             'convolution_param {{ num_output: 3 kernel_size: 1 }} }}\n')
    val.write_text(layer.format(labels="lab", more=""))
    status, line = call(score.main, capsys, val, tiny / "w.caffemodel")
    assert status == 2 and "b.png" in line and "truncated" in line
    Image.fromarray(numpy.ones((5, 6, 3), numpy.uint8)).save(t / "img" / "b.png")
    for i in "ab":
        Image.fromarray(numpy.ones((5, 6), numpy.uint8)).save(t / "lab" / f"{i}.jpg")
    val.write_text(layer.format(labels="lab", more=", 'label_ext': '.jpg'"))
    status, line = call(score.main, capsys, val, tiny / "w.caffemodel")
    assert status == 2 and "a.jpg is a JPEG" in line
    val.write_text(layer.format(labels="void", more=""))
    status, line = call(score.main, capsys, val, tiny / "w.caffemodel")
    assert status == 2 and "holds only the ignore_label 255" in line

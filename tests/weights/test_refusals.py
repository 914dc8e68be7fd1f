"""python -m weights refuses what is not what its name says: an empty or renamed .solverstate, NetParameter bytes
under a .solverstate name, a blob whose values do not fill its shape; nothing is written for a refused command."""
import os
import pathlib
import subprocess
import sys

from layers import Net
from netspec import io as netio
from weights.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
          'layer { name: "score" type: "Convolution" bottom: "data" top: "score" '
          'convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }\n')


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err.strip()


def test_weights_refusals(tmp_path, capsys):
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    Net(str(tmp_path / "deploy.prototxt")).save(str(tmp_path / "w.caffemodel"))
    (tmp_path / "empty.solverstate").write_bytes(b"")
    (tmp_path / "renamed.solverstate").write_bytes((tmp_path / "w.caffemodel").read_bytes())
    param = netio.read_caffemodel(str(tmp_path / "w.caffemodel"))
    del param.layer[1].blobs[0].data[-1]                    # 5 of the 6 values of a 2x3x1x1 weight
    netio.write_caffemodel(param, str(tmp_path / "short.caffemodel"))

    code, _, err = run(capsys, "info", tmp_path / "empty.solverstate")
    assert code == 2 and err.startswith("error: ") and "empty.solverstate: the file is empty" in err
    code, _, err = run(capsys, "info", tmp_path / "renamed.solverstate")
    assert code == 2 and "renamed.solverstate: holds a net's weights" in err
    code, out, err = run(capsys, "info", tmp_path / "short.caffemodel")
    assert code == 2 and "2x3x1x1 DAMAGED: 5 of 6 values" in out
    assert "blob 0 of layer 'score' holds 5 values but its shape 2x3x1x1 needs 6" in err
    for argv, words in ((("convert", tmp_path / "w.caffemodel", tmp_path / "out.solverstate"),
                         ["holds weights (a net), not a solver state", "out.solverstate"]),
                        (("convert", tmp_path / "short.caffemodel", tmp_path / "out.caffemodel"),
                         ["short.caffemodel is damaged"]),
                        (("check", tmp_path / "deploy.prototxt", tmp_path / "short.caffemodel"),
                         ["short.caffemodel: param 0 of layer 'score'", "damaged"])):
        code, _, err = run(capsys, *argv)
        assert code == 2 and all(word in err for word in words), err
    assert not list(tmp_path.glob("out.*"))                  # a refused command writes nothing

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "weights", "info", "renamed.solverstate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: renamed.solverstate: holds a net's weights")

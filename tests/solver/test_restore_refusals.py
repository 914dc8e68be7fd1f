"""Resuming from a .solverstate that is empty or holds something else says so, naming the file, rather than
blaming another net or solver type."""
import pytest

from netspec.errors import CaffeFormatError
from solver import get_solver
from tests.solver.tiny import make_tiny


def test_empty_or_renamed_snapshot_names_the_real_cause(tmp_path):
    solver = get_solver(make_tiny(tmp_path, max_iter=1))
    model, _ = solver.snapshot()
    (tmp_path / "empty.solverstate").write_bytes(b"")
    (tmp_path / "model.solverstate").write_bytes(open(model, "rb").read())
    with pytest.raises(CaffeFormatError, match=r"empty\.solverstate: the file is empty \(0 bytes\)"):
        solver.restore(str(tmp_path / "empty.solverstate"))
    with pytest.raises(CaffeFormatError, match=r"model\.solverstate: holds a net's weights \(a \.caffemodel"):
        solver.restore(str(tmp_path / "model.solverstate"))

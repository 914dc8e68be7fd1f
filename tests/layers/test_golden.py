"""Every layer/net case in ../shared/caffe-golden against real Caffe's numbers (forward, diffs, param diffs)."""
import pytest

from layers import known_types
from tests.conftest import GOLDEN
from tests.golden import Case, run_case

CASES = sorted(p for p in GOLDEN.glob("*.h5") if not p.name.startswith("solver_"))


def test_golden_cases_present():
    assert len(CASES) >= 70, f"expected the caffe-golden layer cases in {GOLDEN}"


def test_every_golden_layer_type_is_registered():
    used = {t for path in CASES for t in Case(path).layer_types()}
    missing = sorted(used - set(known_types()))
    assert not missing, f"layer types in the golden cases with no implementation: {missing}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path, device):
    case = Case(path)
    missing = set(case.layer_types()) - set(known_types())
    if missing:
        pytest.skip(f"needs layer types {sorted(missing)}")   # test_every_golden_layer_type_is_registered fails
    run_case(case, device)

"""Every layer/net case in tests/vectors/caffe-golden and tests/vectors/caffe-golden-catalog (the rest of Caffe's layer
catalog) against real Caffe's numbers (forward, diffs, param diffs; statistics after forward, written files)."""
import pytest

from layers import known_types
from tests.conftest import GOLDEN, SHARED
from tests.golden import Case, run_case

CASES = sorted(p for p in GOLDEN.glob("*.h5") if not p.name.startswith("solver_"))
CATALOG = sorted((SHARED / "caffe-golden-catalog").glob("*.h5"))
REFUSING = [p for p in CATALOG if "force_backward" in Case(p).attrs]   # nets that leave force_backward out


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


def test_catalog_cases_present():
    assert len(CATALOG) >= 50, f"expected the caffe-golden-catalog cases in {SHARED / 'caffe-golden-catalog'}"
    assert len(REFUSING) >= 4


def test_every_catalog_layer_type_is_registered():
    used = {t for path in CATALOG for t in Case(path).layer_types()}
    missing = sorted(used - set(known_types()))
    assert not missing, f"layer types in the catalog cases with no implementation: {missing}"


def _runnable(case):
    missing = set(case.layer_types()) - set(known_types())
    if missing:
        pytest.skip(f"needs layer types {sorted(missing)}")   # test_every_catalog_layer_type_is_registered fails
    return case


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_catalog_case(path, device, tmp_path):
    run_case(_runnable(Case(path)), device, workdir=tmp_path)


@pytest.mark.parametrize("path", REFUSING, ids=[p.stem for p in REFUSING])
def test_catalog_case_forced_backward_leaves_refused_bottoms(path, tmp_path):
    """Where Caffe aborts on a forced gradient into an index, selector or matrix bottom, force_backward: true
    either leaves that bottom out here (allow_force_backward), so every number stays Caffe's, or stops, as Caffe
    does, with an error that names the layer."""
    case = _runnable(Case(path))
    try:
        run_case(case, "cpu", workdir=tmp_path, force_backward=True)
    except ValueError as e:
        names = [layer.name for layer in case.net_param(tmp_path).layer]
        assert any(f"'{name}'" in str(e) for name in names), str(e)

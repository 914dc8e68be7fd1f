"""The short table bench/gpu_check.sh prints last: the card, the GPU tests passed/failed, the largest CPU/GPU
difference per layer type, and the FCN-8s benchmark rows.

    python -m bench.gpu_report --junit junit.xml --parity parity.jsonl --bench bench.json [--card NAME]

Inputs: pytest's JUnit XML of the `-m gpu` run; the JSON lines tests/layers/test_gpu_parity.py appends when
FCN_GPU_REPORT is set (only its 'gpu' rows count here); bench/gpu_fcn8s.py --json. A missing file is reported as
missing, not as a pass.
"""
import argparse
import collections
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def test_counts(junit):
    """{'passed', 'failed', 'skipped', 'total'} and the failed test names, from a JUnit XML file."""
    root = ElementTree.parse(junit).getroot()
    counts = collections.Counter()
    failed = []
    for case in root.iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        counts[outcome] += 1
        if outcome == "failed":
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    counts["total"] = sum(counts[k] for k in ("passed", "failed", "skipped"))
    return dict(counts), failed


def largest_differences(parity, device="gpu"):
    """{layer type: (max abs difference, max relative difference, cases)} over the parity report's rows."""
    worst = {}
    for line in Path(parity).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("device") != device:
            continue
        a, r, n = worst.get(row["layer"], (0.0, 0.0, 0))
        worst[row["layer"]] = (max(a, row["max_abs"]), max(r, row["max_rel"]), n + 1)
    return worst


def report(junit=None, parity=None, bench=None, card=None):
    lines = ["=" * 78, "GPU check summary"]
    summary = None
    if bench and Path(bench).exists():
        summary = json.loads(Path(bench).read_text())
        card = card or summary.get("card")
    lines.append(f"card: {card or 'unknown'}")
    if junit and Path(junit).exists():
        counts, failed = test_counts(junit)
        lines.append(f"GPU tests (-m gpu): {counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
                     f"{counts.get('skipped', 0)} skipped of {counts['total']}")
        lines += [f"  FAILED {name}" for name in failed[:20]]
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more")
    else:
        lines.append(f"GPU tests: no results ({junit or 'no JUnit file given'} missing)")
    if parity and Path(parity).exists():
        worst = largest_differences(parity)
        lines.append("largest CPU/GPU difference per layer type (float32; forward, bottom and param diffs):")
        lines.append(f"  {'layer':18s}{'max |diff|':>12s}{'max rel':>12s}{'cases':>7s}")
        for layer, (a, r, n) in sorted(worst.items()):
            lines.append(f"  {layer:18s}{a:12.2e}{r:12.2e}{n:7d}")
        if not worst:
            lines.append("  (no GPU rows: the parity tests did not run on a GPU)")
    else:
        lines.append(f"CPU/GPU differences: no results ({parity or 'no parity file given'} missing)")
    if summary:
        from bench.gpu_fcn8s import format_table
        lines.append("benchmark:")
        lines += ["  " + line for line in format_table(summary).splitlines()]
    else:
        lines.append(f"benchmark: no results ({bench or 'no bench file given'} missing)")
    lines.append("=" * 78)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--junit")
    parser.add_argument("--parity")
    parser.add_argument("--bench")
    parser.add_argument("--card")
    args = parser.parse_args(argv)
    print(report(args.junit, args.parity, args.bench, args.card))
    return 0


if __name__ == "__main__":
    sys.exit(main())

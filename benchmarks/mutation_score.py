"""Mutation score of the code that decides published numbers and the CI gate (``make mutants``; not a test).

    python benchmarks/mutation_score.py             # run mutmut (resumes its own cache), then report
    python benchmarks/mutation_score.py --no-run    # report the last run only

mutmut ([tool.mutmut] in pyproject.toml) plants one small change at a time (a flipped comparison, a
constant off by one, a dropped argument) in the modules listed there and runs the tests that reach the
changed function; a mutant the tests do not notice "survives". Prints, per module and overall: mutants,
killed (a test failed, or the run timed out), survived, not reached by any test, and the score
``killed / mutants``; then every survivor that tests/MUTANTS.md does not explain. Exit 1 when a survivor is
unexplained, so that a new gap is either closed by a test or written down with its reason.

tests/MUTANTS.md lists each survivor by mutmut's name (``bench.run.stats.x_holm__mutmut_17``) in a table
row ``| name | reason |``; the reasons are grouped there (an equivalent mutant: no input changes the
result; or a change of words only where no test reads the words).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPLAINED = ROOT / "tests" / "MUTANTS.md"
KILLED = {"killed", "timeout"}
LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*$")
ROW = re.compile(r"^\|\s*`?(?P<name>[^|`\s]+__mutmut_\d+)`?\s*\|")


def mutmut(*args: str) -> str:
    binary = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(binary), *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"mutmut {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def module_of(name: str) -> str:
    """``bench.run.stats.x_holm__mutmut_3`` -> ``bench.run.stats``; methods read ``xǁClassǁmethod``."""
    return name.split(".x_")[0].split(".xǁ")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="report the last run without running mutmut")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant processes (default 2)")
    args = parser.parse_args()
    if not args.no_run:
        mutmut("run", "--max-children", str(args.max_children))
    statuses = {m["name"]: m["status"] for m in map(LINE.match, mutmut("results", "--all", "true").splitlines()) if m}
    if not statuses:
        sys.exit("no mutmut results: run without --no-run first")
    explained = {m["name"] for m in map(ROW.match, EXPLAINED.read_text("utf-8").splitlines()) if m}
    per_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        per_module[module_of(name)][status] += 1
    print(f"{'module':34} {'mutants':>8} {'killed':>7} {'survived':>9} {'no tests':>9} {'score':>7}")
    total = collections.Counter()
    for module, counts in sorted(per_module.items()):
        total += counts
        _print_row(module, counts)
    _print_row("all", total)
    unchecked = sum(n for status, n in total.items() if status not in KILLED | {"survived", "no tests"})
    if unchecked:
        print(f"{unchecked} mutants not checked or suspicious (interrupted run? run again)")
    survivors = sorted(n for n, s in statuses.items() if s in ("survived", "no tests"))
    unexplained = [name for name in survivors if name not in explained]
    print(f"{len(survivors)} survivors, {len(survivors) - len(unexplained)} explained in "
          f"{EXPLAINED.relative_to(ROOT)}")
    for name in unexplained:
        print(f"  unexplained: {name}   (mutmut show {name})")
    sys.exit(1 if unexplained else 0)


def _print_row(module: str, counts: collections.Counter) -> None:
    mutants = sum(counts.values())
    killed = sum(counts[s] for s in KILLED)
    print(f"{module:34} {mutants:8d} {killed:7d} {counts['survived']:9d} {counts['no tests']:9d} "
          f"{killed / mutants:7.1%}")


if __name__ == "__main__":
    main()

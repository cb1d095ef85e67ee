"""The whole loop's timeline against a real pool and a real worker VM (needs root).

Runs tests/test_condor_vm.py (a job submitted with condor_submit, a VM booted under TCG, the
job run there, the VM retired through its master and removed) and prints its `pool_<step>_s`
lines: seconds after the submit at which each step was seen.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_figures(tests: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str],
                                                          dict[str, str]]:
    """Run the test files `tests` (paths under tests/) in one pytest run; its result and the
    `name_s=value` figures the tests printed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         *(str(ROOT / "tests" / test) for test in tests)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    # pytest prints its progress dots on the same lines as the figures.
    return done, dict(re.findall(r"\b(\w+_s)=(\S+)", done.stdout))


def failed(bench: str, done: subprocess.CompletedProcess[str]) -> int:
    """Say that the tests behind `bench` failed, with the end of their output; exit status 1."""
    print(f"{bench}: the tests failed (pytest exit {done.returncode}):\n"
          + done.stdout[-3000:], file=sys.stderr)
    return 1


def main() -> int:
    done, figures = run_figures(["test_condor_vm.py"], 1800)
    lines = [f"{name}={value}" for name, value in figures.items() if name.startswith("pool_")]
    for line in lines:
        print(line)
    if done.returncode != 0 or not lines:
        return failed("pool bench", done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

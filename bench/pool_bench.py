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


def main() -> int:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "test_condor_vm.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    # pytest prints its progress dots on the same lines as the figures.
    lines = re.findall(r"\bpool_\w+_s=\S+", done.stdout)
    for line in lines:
        print(line)
    if done.returncode != 0 or not lines:
        print(f"pool bench: the loop failed (pytest exit {done.returncode}):\n"
              + done.stdout[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The single container's figures (needs root, podman): its build fresh and cached, its size,
and the whole loop inside it next to the same loop outside it.

Builds container/Dockerfile with none of podman's cached layers (`container_build_fresh_s`;
the debootstrapped base is kept), then again as after a code change
(`container_build_cached_s`), then runs tests/test_container_image.py and
tests/test_condor_vm.py in one pytest run and prints their figures: `container_ready_s` (start
to every program RUNNING), `container_stop_s`, and `container_pool_<step>_s` beside
`pool_<step>_s` (seconds after the submit at which each step of the loop was seen).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pool_bench import failed, run_figures  # noqa: E402  (the root on the path)
from tests.container_image import build  # noqa: E402
from tests.test_condor_vm import STEPS  # noqa: E402


def main() -> int:
    fresh = build(fresh=True)
    print(f"container_build_fresh_s={fresh.seconds:.1f}")
    cached = build()
    print(f"container_build_cached_s={cached.seconds:.1f}")
    print(f"container_image_mb={cached.megabytes:.0f} (goal under 1000)")
    done, figures = run_figures(["test_container_image.py", "test_condor_vm.py"], 3600)
    order = ["container_ready_s", "container_stop_s"] + [
        f"{where}pool_{step}_s" for step in STEPS for where in ("", "container_")]
    lines = [f"{name}={figures[name]}" for name in order if name in figures]
    for line in lines:
        print(line)
    if done.returncode != 0 or len(lines) != len(order):
        return failed("container bench", done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

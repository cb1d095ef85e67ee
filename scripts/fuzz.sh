#!/usr/bin/env bash
# Explore the property tests beyond what `make test` runs: the suite draws the same examples
# every run (conftest.py's "suite" profile); this runs them with new random examples for
# each of SEEDS seeds (default 200), stops at the first seed that fails and says which.
#   scripts/fuzz.sh [pytest selection...]   e.g. tests/test_fuzz.py -k classad2
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-200}
VENV=${VENV:-.venv}
selection=("$@")
((${#selection[@]})) || selection=(tests/test_fuzz.py services/planner/tests services/poller/tests)
for seed in $(seq 1 "$SEEDS"); do
    if ! CS_HYPOTHESIS_PROFILE=explore "$VENV/bin/pytest" -q -p no:cacheprovider \
            --hypothesis-seed="$seed" "${selection[@]}" > /tmp/cs-fuzz.$$ 2>&1; then
        cat /tmp/cs-fuzz.$$
        rm -f /tmp/cs-fuzz.$$
        echo "fuzz: seed $seed failed (rerun: CS_HYPOTHESIS_PROFILE=explore $VENV/bin/pytest --hypothesis-seed=$seed ${selection[*]})" >&2
        exit 1
    fi
    tail -1 /tmp/cs-fuzz.$$ | sed "s/^/fuzz: seed $seed: /"
done
rm -f /tmp/cs-fuzz.$$
echo "fuzz: $SEEDS seeds, every one passed"

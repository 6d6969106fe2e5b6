#!/usr/bin/env bash
# Install displacement-sim with its test extras into the active environment and run the fast test suite.
# Usage: bash scripts/test.sh [pytest args]   (slow statistical tests: bash scripts/test.sh -m slow)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[test]"
python -m pytest -m "not slow" -q "$@"

#!/usr/bin/env bash
# Create .venv/ in the repository root and install speech2flame with everything it needs.
# Safe to run again: it reinstalls only when pyproject.toml or the torch choice changed.
#   PYTHON=python3.11        interpreter to build the venv with (bpy needs 3.11)
#   TORCH_SPEC=torch==2.13.0 which torch to install (see README: GPU / CPU-only builds)
#   TORCH_INDEX_URL=...      extra index for torch, e.g. https://download.pytorch.org/whl/cpu
# Running it again with another TORCH_SPEC or TORCH_INDEX_URL replaces the installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
    command -v "$python" >/dev/null || { echo "setup: $python not found; install Python 3.11 or set PYTHON=..." >&2; exit 1; }
    "$python" -m venv .venv
fi
stamp=.venv/.speech2flame-installed
torch_choice="${TORCH_SPEC:-torch==2.13.0} ${TORCH_INDEX_URL:-}"
recorded=$(cat "$stamp" 2>/dev/null || true)
if [ -f "$stamp" ] && [ -z "$recorded" ]; then  # a stamp from an older setup: which torch is unknown
    if [ -n "${TORCH_SPEC:-}${TORCH_INDEX_URL:-}" ]; then recorded="unknown"; else recorded=$torch_choice; fi
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$recorded" != "$torch_choice" ]; then
    replace=()
    if [ -f "$stamp" ] && [ "$recorded" != "$torch_choice" ]; then
        echo "setup: switching torch to: $torch_choice" >&2
        replace=(--force-reinstall --no-deps)  # the same version from another index is "already satisfied"
    fi
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet ${replace[@]+"${replace[@]}"} "${TORCH_SPEC:-torch==2.13.0}" \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
    # setuptools warns at length about editable installs of remapped packages: nothing to act on
    PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet -e ".[test]"
    echo "$torch_choice" > "$stamp"
fi

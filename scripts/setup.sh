#!/usr/bin/env bash
# Create .venv/ in the repository root and install speech2flame with everything it needs.
# Safe to run again: it reinstalls only when pyproject.toml or the torch choice changed.
#   PYTHON=python3.11        interpreter to build the venv with (bpy needs 3.11; default python3.11,
#                            on Windows the launcher's "py -3.11")
#   TORCH_SPEC=torch==2.13.0 which torch to install (see README: GPU / CPU-only builds; on macOS
#                            default "torch>=2.4,<=2.13.0": 2.13.0 needs macOS 14 on Apple silicon)
#   TORCH_INDEX_URL=...      extra index for torch, e.g. https://download.pytorch.org/whl/cpu
# Running it again with another TORCH_SPEC or TORCH_INDEX_URL replaces the installed torch.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_python() {  # the venv's interpreter: .venv/bin/python, or .venv/Scripts/python.exe on Windows
    if [ -x .venv/Scripts/python.exe ]; then echo .venv/Scripts/python.exe; else echo .venv/bin/python; fi
}
if [ ! -x "$(venv_python)" ]; then
    if [ -n "${PYTHON:-}" ]; then read -ra python <<<"$PYTHON"  # e.g. "py -3.11": a command and its options
    elif command -v python3.11 >/dev/null; then python=(python3.11)  # Linux, macOS; else Windows' py -3.11
    elif command -v py >/dev/null && py -3.11 -c "" 2>/dev/null; then python=(py -3.11)
    else echo "setup: python3.11 not found; install Python 3.11 or set PYTHON=..." >&2; exit 1; fi
    "${python[@]}" -m venv .venv || { echo "setup: could not make .venv with ${python[*]} (Python 3.11 needed)" >&2; exit 1; }
fi
py=$(venv_python)
# torch 2.13.0 has macOS wheels for macOS 14+ on Apple silicon only: older macOS takes the newest it can.
default_torch="torch==2.13.0"
if [ "$(uname -s)" = Darwin ]; then default_torch="torch>=2.4,<=2.13.0"; fi
stamp=.venv/.speech2flame-installed
torch_choice="${TORCH_SPEC:-$default_torch} ${TORCH_INDEX_URL:-}"
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
    "$py" -m pip install --quiet --upgrade pip
    "$py" -m pip install --quiet ${replace[@]+"${replace[@]}"} "${TORCH_SPEC:-$default_torch}" \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
    # setuptools warns at length about editable installs of remapped packages: nothing to act on
    PYTHONWARNINGS=ignore "$py" -m pip install --quiet -e ".[test]"
    echo "$torch_choice" > "$stamp"
fi

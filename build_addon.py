#!/usr/bin/env python3
"""Build the installable Blender extension: dist/speech2flame-<version>.zip.

Stages ``blender_addon/`` plus the numpy-only core of the backend package
(head models, FLAME pickle reader, takes, rotations, the demo head) under
``vendor/``, stamps the package version into the manifest, then builds and
validates the zip with Blender's own extension tool (``bl_pkg`` inside the bpy
wheel). Exits non-zero on an invalid manifest. Standard library only.

    python build_addon.py [--out-dir dist] [--blender-ext PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
BACKEND = ROOT / "backend" / "speech2flame"
VENDORED = ("head_model.py", "flame_pickle.py", "npz_files.py", "take.py", "rotations.py", "controls.py", "folders.py")
VENDORED_DATA = ("data/demo_head.npz",)


def package_version() -> str:
    """The version from backend/speech2flame/__init__.py (the one place it is set)."""
    match = re.search(r'^__version__ = "([^"]+)"', (BACKEND / "__init__.py").read_text(), re.M)
    if not match:
        sys.exit("build_addon: no __version__ in backend/speech2flame/__init__.py")
    return match.group(1)


def find_blender_ext() -> Path:
    """Blender's extension command-line tool, inside the installed bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build_addon: bpy is not installed; run scripts/setup.sh or pass --blender-ext PATH")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    sys.exit("build_addon: blender_ext.py not found in the bpy package")


def stage(folder: Path, version: str) -> Path:
    """Copy the add-on and its vendored core into ``folder``; returns the staged source dir."""
    source = folder / "speech2flame"
    shutil.copytree(ADDON, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    vendor = source / "vendor"
    (vendor / "data").mkdir(parents=True)
    (vendor / "__init__.py").write_text('"""numpy-only core copied from the speech2flame package by build_addon.py."""\n')
    for name in (*VENDORED, *VENDORED_DATA):
        if not (BACKEND / name).is_file():
            sys.exit(f"build_addon: missing {BACKEND / name}")
        shutil.copy2(BACKEND / name, vendor / name)
    # The checkout the zip is built from: once installed (under Blender's extensions folder) the
    # add-on finds this checkout's .venv through it (backend_client.find_project_python).
    (vendor / "project.json").write_text(json.dumps({"project": str(ROOT)}) + "\n")
    manifest = source / "blender_manifest.toml"
    text, count = re.subn(r'^version = "[^"]*"', f'version = "{version}"', manifest.read_text(), flags=re.M)
    if count != 1:
        sys.exit("build_addon: blender_manifest.toml needs exactly one top-level version line")
    manifest.write_text(text)
    return source


def build(out_dir: Path, blender_ext: Path | None = None) -> Path:
    """Build and validate the extension zip; returns its path."""
    version = package_version()
    blender_ext = blender_ext or find_blender_ext()
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"speech2flame-{version}.zip"
    with tempfile.TemporaryDirectory() as folder:
        source = stage(Path(folder), version)
        for command in (
            [sys.executable, str(blender_ext), "build", "--source-dir", str(source), "--output-filepath", str(zip_path)],
            [sys.executable, str(blender_ext), "validate", str(zip_path)],
        ):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"build_addon: {command[2]} failed:\n{result.stdout}{result.stderr}")
    return zip_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--blender-ext", type=Path, help="path of Blender's blender_ext.py (default: from bpy)")
    args = parser.parse_args()
    print(build(args.out_dir, args.blender_ext))


if __name__ == "__main__":
    main()

"""What the add-on scenario scripts (``tests/addon_*_scenario.py``) share: installing the add-on
into a fresh Blender session, calling operators, reading keyed curves, reporting.

The scripts run as programs in a subprocess (Blender's user folders in a temporary directory),
so this module is imported from the script's own folder.
"""

import json
import os
import sys
import tempfile

import bpy
import numpy as np

MODULE = "bl_ext.user_default.speech2flame"


def install_addon(zip_path: str) -> list[str]:
    """A factory-fresh empty session with the add-on zip installed and enabled; the install's result."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return list(bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                         enable_on_install=True))


def call(operator, **kwargs) -> list:
    """Run an operator: ["FINISHED"] / ["CANCELLED"], or ["ERROR", message] when it reported an error."""
    try:
        return list(operator(**kwargs))
    except RuntimeError as exc:  # bpy.ops raises when the operator reported an error
        return ["ERROR", str(exc)]


def printed(operator, **kwargs) -> tuple[list, str]:
    """call(operator) and what Blender printed meanwhile (its reports: "Info: ...", "Warning: ...")."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            result = call(operator, **kwargs)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        return result, capture.read().decode(errors="replace")


def fcurve_values(action, data_path_start: str) -> dict[str, np.ndarray]:
    """{data_path[index]: (keys, 2) frame and value of every key} for the F-curves of a layered
    ``action`` whose data path starts with ``data_path_start``."""
    values = {}
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    if fc.data_path.startswith(data_path_start):
                        co = np.empty(len(fc.keyframe_points) * 2, np.float32)
                        fc.keyframe_points.foreach_get("co", co)
                        values[f"{fc.data_path}[{fc.array_index}]"] = co.reshape(-1, 2)
    return values


def print_report(report: dict) -> None:
    """The one line the test reads: "REPORT <json>"."""
    print("REPORT " + json.dumps(report))

"""The numpy-only core shared with the backend package (head models, takes, rotations, controls,
the folder write check).

Inside the installed extension these modules are vendored by ``build_addon.py``
into ``vendor/``; from a source checkout (the CLI, tests) they come from the
``speech2flame`` package itself. Either way there is one implementation.
"""

try:
    from .vendor import controls, folders, head_model, rotations, take
except ImportError:  # running from the source tree / pip-installed backend
    from speech2flame import controls, folders, head_model, rotations, take

__all__ = ["controls", "folders", "head_model", "rotations", "take"]

"""speech2flame: speech-driven FLAME facial animation.

Data flows one way: audio -> engine -> Take -> rig -> export.
This top-level module stays light (no torch import) so the Blender add-on
can use the numpy-only parts (`take`, `head_model`, `rotations`).
"""

__version__ = "0.1.0"

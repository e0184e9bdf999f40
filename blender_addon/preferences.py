"""Add-on preferences: how to reach the speech2flame backend."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty


class Speech2FlamePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_mode: EnumProperty(name="Backend", default="LOCAL", items=[
        ("LOCAL", "Local Server", "Start `speech2flame serve` with a Python that has the backend installed"),
        ("REMOTE", "Remote Server", "Connect to a running server, e.g. a GPU machine on your network"),
        ("IN_PROCESS", "Inside Blender", "Import the backend into Blender's own Python (needs torch there)"),
    ])
    python_path: StringProperty(name="Python", subtype="FILE_PATH",
                                description="Python with speech2flame installed (empty: the project's .venv)")
    device: EnumProperty(name="Device", default="cpu", items=[
        ("cpu", "CPU", "Run the neural engine on the CPU (the shipped model needs no GPU)"),
        ("cuda", "GPU (CUDA)", "Run the neural engine on the first NVIDIA GPU (for wav2vec 2.0 / HuBERT models)"),
        ("auto", "Auto", "A GPU when the backend's torch sees one, else the CPU"),
    ], description="Where the local server runs the neural engine")
    analyse_ahead: BoolProperty(
        name="Analyse Clips Ahead", default=True,
        description="When you choose an audio file or sound strip, the local server starts analysing it at once "
                    "(word recognition), so Generate is quick when you click it")
    remote_url: StringProperty(name="URL", default="http://127.0.0.1:8765",
                               description="Address of a running `speech2flame serve`")
    remote_token: StringProperty(name="Token", subtype="PASSWORD",
                                 description="The server's bearer token")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        if self.backend_mode == "LOCAL":
            layout.prop(self, "python_path")
            layout.prop(self, "device")
            layout.prop(self, "analyse_ahead")
        elif self.backend_mode == "REMOTE":
            layout.prop(self, "remote_url")
            layout.prop(self, "remote_token")
            warning = plain_http_warning(self.remote_url)
            if warning:
                layout.label(text=warning, icon="ERROR")
        layout.operator("speech2flame.check_backend", icon="CHECKMARK")


def plain_http_warning(url: str) -> str:
    """A warning when ``url`` sends the token and the audio unencrypted to another machine, else ""."""
    from .backend_client import is_loopback

    text = url.strip()
    if text.lower().startswith("https://") or is_loopback(text if "://" in text else "http://" + text):
        return ""
    return "Plain http to another machine: the token and audio travel unencrypted (use https or an SSH tunnel)."


def get(context=None) -> Speech2FlamePreferences | None:
    """This add-on's preferences (None when it is not registered as an add-on, e.g. in tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None

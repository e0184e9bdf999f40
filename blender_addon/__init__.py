"""Speech2FLAME: facial animation from recorded dialogue, as a Blender extension.

Modules: ``properties`` (settings saved in the .blend), ``operators``
(everything under ``speech2flame.``), ``panels`` (the sidebar tab),
``preferences`` (how to reach the backend), ``rig`` / ``take_writer`` /
``sequencer`` / ``export`` / ``preview`` (shared with the headless CLI), ``backend`` and
``backend_client`` (the job server connection), ``analyse_ahead`` (the chosen
clip analysed before Generate is clicked). Never imports torch.
"""

import bpy

from . import analyse_ahead, backend, operators, panels, preferences, properties

_CLASSES = (preferences.Speech2FlamePreferences, *operators.CLASSES, *panels.CLASSES)


def register():
    properties.register()
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    operators.register()


def unregister():
    operators.unregister()
    analyse_ahead.stop()
    backend.stop_local()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
    properties.unregister()

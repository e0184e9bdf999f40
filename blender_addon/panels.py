"""The Speech2FLAME tab in the 3D View sidebar."""

from __future__ import annotations

import bpy

from . import analyse_ahead, emotion_keys, job, operators
from .rig import RIG_PROP
from .sequencer import all_strips


class SPEECH2FLAME_UL_takes(bpy.types.UIList):
    """Takes made on the rig; double-click to rename."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon="ACTION")
        row.label(text=item.summary)


class SPEECH2FLAME_PT_main(bpy.types.Panel):
    bl_label = "Speech2FLAME"
    bl_idname = "SPEECH2FLAME_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Speech2FLAME"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.speech2flame

        box = layout.box()
        box.label(text="Rig", icon="ARMATURE_DATA")
        box.prop(settings, "rig", text="")
        other = operators.selected_rig(context)
        if other is not None:  # Generate animates the Rig above, not the head clicked in the viewport
            row = box.row(align=True)
            row.label(text=f"Selected: {other.name}", icon="INFO")
            row.operator("speech2flame.use_selected_rig")
        row = box.row(align=True)
        row.operator("speech2flame.add_demo_head", icon="USER")
        row.operator("speech2flame.import_head_model", icon="IMPORT", text="Import...")

        box = layout.box()
        box.label(text="Audio", icon="SOUND")
        box.prop(settings, "audio_source", expand=True)
        if settings.audio_source == "FILE":
            box.prop(settings, "audio_path", text="")
        elif settings.audio_source == "SCENE":
            box.prop(settings, "mix_channel")
            box.label(text=f"Frames {context.scene.frame_start}-{context.scene.frame_end}, one take", icon="SEQUENCE")
        elif any(strip.type == "SOUND" for strip in all_strips(context.scene)):
            editor = context.scene.sequence_editor
            box.prop_search(settings, "sound_strip", editor,
                            "strips_all" if hasattr(editor, "strips_all") else "sequences_all", text="")
        else:
            box.label(text="No sound strips in the Sequencer", icon="INFO")
        line = analyse_ahead.panel_line(settings)
        if line is not None:
            box.label(text=line[0], icon=line[1])
        box.prop(settings, "transcript")
        box.prop(settings, "transcript_text", text="Text")
        row = box.row()
        row.active = not job.transcript_of(settings)
        row.prop(settings, "recognise_words")
        if settings.heard_words:
            row = box.row(align=True)
            row.label(text=f"Heard: {settings.heard_words}", icon="REC")
            row.operator("speech2flame.use_heard_words", text="", icon="PASTEDOWN")

        box = layout.box()
        box.label(text="Performance", icon="SHADERFX")
        box.prop(settings, "engine")
        if settings.engine == "neural":
            box.prop(settings, "model")
        if settings.engine in ("neural", "auto"):
            box.prop(settings, "style_ref")
        box.prop(settings, "emotion")
        box.prop(settings, "intensity", slider=True)
        if emotion_keys.keyed_curves(context.scene):
            box.label(text="Keyed on the timeline: the take follows the keys", icon="KEYFRAME_HLT")
        col = box.column(align=True)
        for name in ("articulation", "expressiveness", "head_motion", "blink_rate", "smoothing"):
            col.prop(settings, name, slider=True)
        row = box.row()
        row.prop(settings, "seed")
        row.prop(settings, "reduce_keys")
        box.row(align=True).prop(settings, "key_parts", expand=True)

        if operators.job_running():
            row = layout.row(align=True)
            if hasattr(row, "progress"):
                row.progress(factor=settings.progress, type="BAR", text=settings.status or "Generating...")
            else:
                row.prop(settings, "progress", text=settings.status or "Generating...", slider=True)
            row.operator("speech2flame.cancel", text="", icon="CANCEL")
        else:
            layout.operator("speech2flame.generate", icon="PLAY")

        rig = settings.rig if settings.rig and RIG_PROP in settings.rig else None
        if rig is not None:
            box = layout.box()
            box.label(text="Takes", icon="ACTION")
            row = box.row()
            row.template_list("SPEECH2FLAME_UL_takes", "", rig, "speech2flame_takes", rig,
                              "speech2flame_take_index", rows=3)
            col = row.column(align=True)
            col.prop(settings, "replace_take", text="", icon="FILE_REFRESH")
            col.operator("speech2flame.take_delete", text="", icon="X")
            col.operator("speech2flame.take_push_to_nla", text="", icon="NLA_PUSHDOWN")

        col = layout.column(align=True)
        row = col.row(align=True)
        row.operator("speech2flame.export_fbx", icon="EXPORT")
        row.operator("speech2flame.export_alembic", icon="EXPORT")
        row = col.row(align=True)
        row.operator("speech2flame.export_gltf", icon="EXPORT")
        row.operator("speech2flame.export_usd", icon="EXPORT")


CLASSES = (SPEECH2FLAME_UL_takes, SPEECH2FLAME_PT_main)

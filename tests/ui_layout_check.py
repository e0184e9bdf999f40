"""Check an add-on's ``draw`` functions headless, where Blender has no window to draw into.

:class:`CheckedLayout` stands in for ``bpy.types.UILayout``: every call a panel makes is checked
against Blender's own description of that call (``UILayout.bl_rna.functions``) and against the
data it names, and recorded. So a property, operator, icon, UI list or keyword that does not exist
is a problem found here instead of a panel that draws half and prints a traceback in the user's
console. Imported by the add-on scenario scripts (they run in a subprocess with ``bpy``).
"""

from __future__ import annotations

import bpy

_FUNCTIONS = bpy.types.UILayout.bl_rna.functions
_ICONS = {item.identifier for item in _FUNCTIONS["label"].parameters["icon"].enum_items}
_SETTINGS = {p.identifier for p in bpy.types.UILayout.bl_rna.properties if not p.is_readonly}


def _operator_exists(idname: str) -> bool:
    module, _, name = idname.partition(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
    except (AttributeError, KeyError):
        return False
    return True


class CheckedLayout:
    """A ``UILayout`` that checks and records what is drawn into it.

    ``problems`` (shared by the whole tree of layouts) lists every wrong call as one line;
    ``drawn`` lists what was drawn: ("prop", data path name), ("operator", idname), ("label", text),
    ("template_list", list type), ("progress", text).
    """

    def __init__(self, problems: list | None = None, drawn: list | None = None):
        object.__setattr__(self, "problems", [] if problems is None else problems)
        object.__setattr__(self, "drawn", [] if drawn is None else drawn)

    def __getattr__(self, name):  # a UILayout function this stand-in does not know
        if name in _SETTINGS:
            return getattr(bpy.types.UILayout.bl_rna.properties[name], "default", None)
        if name in _FUNCTIONS:
            raise NotImplementedError(f"CheckedLayout does not check UILayout.{name} yet")
        raise AttributeError(f"UILayout has no function {name!r}")

    def __setattr__(self, name, value):  # layout.active = False and the like: only UILayout's settings
        if name not in _SETTINGS:
            self.problems.append(f"UILayout has no setting {name!r}")
        object.__setattr__(self, name, value)

    def _check_keywords(self, function: str, given: dict) -> None:
        known = {p.identifier for p in _FUNCTIONS[function].parameters}
        for key in given:
            if key not in known:
                self.problems.append(f"{function}(): no keyword {key!r}")
        icon = given.get("icon")
        if icon is not None and icon not in _ICONS:
            self.problems.append(f"{function}(): no icon {icon!r}")

    def _check_property(self, function: str, data, name: str):
        """The RNA property ``name`` of ``data``, or None (a problem recorded)."""
        if data is None:
            self.problems.append(f"{function}(): data is None for {name!r}")
            return None
        prop = data.bl_rna.properties.get(name)
        if prop is None:
            self.problems.append(f"{function}(): {type(data).__name__} has no property {name!r}")
        return prop

    def _child(self, function: str, **kwargs) -> "CheckedLayout":
        self._check_keywords(function, kwargs)
        return CheckedLayout(self.problems, self.drawn)

    def row(self, **kwargs):
        return self._child("row", **kwargs)

    def column(self, **kwargs):
        return self._child("column", **kwargs)

    def box(self, **kwargs):
        return self._child("box", **kwargs)

    def split(self, **kwargs):
        return self._child("split", **kwargs)

    def separator(self, **kwargs):
        self._check_keywords("separator", kwargs)

    def label(self, **kwargs):
        self._check_keywords("label", kwargs)
        if not isinstance(kwargs.get("text", ""), str):
            self.problems.append(f"label(): text is {type(kwargs['text']).__name__}, not str")
        self.drawn.append(("label", kwargs.get("text", "")))

    def prop(self, data, property, **kwargs):
        self._check_keywords("prop", kwargs)
        prop = self._check_property("prop", data, property)
        if prop is not None:
            if kwargs.get("expand") and prop.type != "ENUM":
                self.problems.append(f"prop(): expand on {property!r}, a {prop.type} property")
            if kwargs.get("slider") and prop.type not in ("FLOAT", "INT"):
                self.problems.append(f"prop(): slider on {property!r}, a {prop.type} property")
        self.drawn.append(("prop", property))

    def prop_search(self, data, property, search_data, search_property, **kwargs):
        self._check_keywords("prop_search", kwargs)
        self._check_property("prop_search", data, property)
        searched = self._check_property("prop_search", search_data, search_property)
        if searched is not None and searched.type != "COLLECTION":
            self.problems.append(f"prop_search(): {search_property!r} is not a collection")
        self.drawn.append(("prop", property))

    def operator(self, operator, **kwargs):
        self._check_keywords("operator", kwargs)
        if not _operator_exists(operator):
            self.problems.append(f"operator(): no operator {operator!r}")
        self.drawn.append(("operator", operator))

    def progress(self, **kwargs):
        self._check_keywords("progress", kwargs)
        factor = kwargs.get("factor", 0.0)
        if not 0.0 <= factor <= 1.0:
            self.problems.append(f"progress(): factor {factor} outside 0..1")
        self.drawn.append(("progress", kwargs.get("text", "")))

    def template_list(self, listtype_name, list_id, dataptr, propname, active_dataptr, active_propname, **kwargs):
        self._check_keywords("template_list", kwargs)
        if not isinstance(getattr(bpy.types, listtype_name, None), type):
            self.problems.append(f"template_list(): no UI list {listtype_name!r} registered")
        items = self._check_property("template_list", dataptr, propname)
        if items is not None and items.type != "COLLECTION":
            self.problems.append(f"template_list(): {propname!r} is not a collection")
        index = self._check_property("template_list", active_dataptr, active_propname)
        if index is not None and index.type != "INT":
            self.problems.append(f"template_list(): {active_propname!r} is not an int")
        self.drawn.append(("template_list", listtype_name))


def draw(draw_function, context, data=None) -> CheckedLayout:
    """Call a ``draw(self, context)`` function (a Panel's or AddonPreferences') with a
    :class:`CheckedLayout` as ``self.layout``; ``data`` stands for ``self`` otherwise (the
    preferences whose properties the function reads). The layout, with its problems and drawn items."""
    layout = CheckedLayout()

    class Self:
        def __getattr__(self, name):
            return getattr(data, name)

    me = Self()
    me.layout = layout
    draw_function(me, context)
    return layout

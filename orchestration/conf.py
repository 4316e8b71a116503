"""Settings read on every request, without the toll of Django's lazy settings object.

``django.conf.settings`` is a ``LazyObject``: every attribute read goes through its
``__getattribute__``, which asks the value for ``_mask_wrapped`` and, for every plain value (a
dict, a number, a flag), builds and formats an ``AttributeError`` to learn that it has none: about
a microsecond a read, and a chat stream read settings a dozen times. ``setting`` keeps each value
it read until any setting changes (Django's ``setting_changed`` signal, which ``override_settings``
and pytest-django's ``settings`` fixture send). A dict such as ``SWITCHYARD`` is kept as the same
object, so a change made inside it is seen at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

_read: dict[str, Any] = {}


def setting(name: str) -> Any:
    """``getattr(settings, name)``, read once until a setting changes."""
    try:
        return _read[name]
    except KeyError:
        value = _read[name] = getattr(settings, name)
        return value


def switchyard_setting(name: str, default: Any = None) -> Any:
    """``settings.SWITCHYARD.get(name, default)``, through ``setting``."""
    return setting("SWITCHYARD").get(name, default)


def _forget(**_: Any) -> None:
    _read.clear()


setting_changed.connect(_forget, dispatch_uid="orchestration.conf")

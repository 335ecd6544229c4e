"""The one list of unlearning methods: name -> :class:`~workbench.methods.base.Method`, in the order the
workbench shows them. Everything that lists, validates or dispatches methods reads it (the config's ``method:``
and ``methods:`` keys, the run, plan, model card, compare, tune and notebook 06).

``methods:`` in the run config is :data:`MethodsConfig`, a dataclass built from the methods' settings classes
(one section per method that has settings: the training methods first, then the others, each in registry order).
:func:`register` adds a method at run time and rebuilds it.
"""

from __future__ import annotations

import dataclasses
import difflib

from workbench.errors import WorkbenchError
from workbench.methods.base import Method, settings_help
from workbench.methods.ga import GA
from workbench.methods.graddiff import GradDiff
from workbench.methods.npo import NPO
from workbench.methods.prompt import Prompt
from workbench.methods.rmu import RMU
from workbench.methods.simnpo import SimNPO
from workbench.methods.whp import WHP
from workbench.methods.whp_test_time import WHPTestTime

__all__ = ["METHODS", "BUILT_IN", "MethodsConfig", "names", "get", "register", "unregister"]

METHODS: dict[str, Method] = {
    m.name: m for m in (WHP(), WHPTestTime(), GA(), GradDiff(), NPO(), SimNPO(), RMU(), Prompt())
}
BUILT_IN = tuple(METHODS)


def names() -> tuple[str, ...]:
    return tuple(METHODS)


def get(name: str) -> Method:
    """The method called ``name``; an unknown name is an error listing them."""
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WorkbenchError(f"method: unknown method {name!r}{hint}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def _settings_class() -> type:
    with_settings = [m for m in METHODS.values() if m.settings is not None]
    ordered = sorted(with_settings, key=lambda m: not m.trains)  # stable: registry order within each group
    fields = [
        (m.name, m.settings, dataclasses.field(default_factory=m.settings, metadata=settings_help(m.summary)))
        for m in ordered
    ]
    cls = dataclasses.make_dataclass("MethodsConfig", fields)
    cls.__module__ = __name__
    cls.__doc__ = "Per-method settings; only the section of the chosen ``method`` is read."
    return cls


MethodsConfig: type = _settings_class()


def register(method: Method) -> Method:
    """Add ``method`` (a new name) to the registry and rebuild :data:`MethodsConfig`; configs read afterwards
    accept ``method: <its name>`` and its ``methods.<name>`` section. Returns it."""
    global MethodsConfig
    if not method.name or method.name in METHODS:
        raise WorkbenchError(f"register: a method needs a new name, got {method.name!r}")
    if method.settings is not None and not dataclasses.is_dataclass(method.settings):
        raise WorkbenchError(f"register: {method.name}.settings must be a @dataclass, got {method.settings!r}")
    METHODS[method.name] = method
    MethodsConfig = _settings_class()
    return method


def unregister(name: str) -> None:
    """Remove a method added by :func:`register` (a test's cleanup); the built-in ones stay."""
    global MethodsConfig
    if name in BUILT_IN:
        raise WorkbenchError(f"unregister: {name!r} is a built-in method")
    METHODS.pop(name, None)
    MethodsConfig = _settings_class()

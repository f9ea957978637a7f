"""Replace a method of one object (an event loop) without touching its ``__dict__``.

On CPython 3.11 and 3.12 an object keeps its attributes in a compact array shared
in layout with the other instances of its class, and the interpreter reads them
from there by a fast path. Reading the object's ``__dict__`` (``vars(loop)``, or
``setattr`` beyond the class's shared key table) moves them into an ordinary dict,
for the rest of the object's life: every attribute read in its methods then takes
the slower path. An event loop reads its attributes dozens of times per iteration;
``vars(loop)`` alone made every later ``await asyncio.sleep(0)`` on that loop cost
3,800 more instructions (+12 %) on 3.11 and 6,100 more (+17 %) on 3.12 (callgrind,
20,000 iterations; 3.13 is unaffected).

:func:`patch_method` therefore installs, on the object's class, a descriptor
(:class:`_PerInstanceMethod`) that gives the replacement to that one object and the
class's own method to every other instance. It stays on the class only while some
instance has a replacement: the class gets its attribute back when the last one is
undone, or when the last patched object is garbage collected. Where the class
cannot take it (a type implemented in C) or the object holds the attribute itself
(a :func:`unittest.mock.patch.object` made earlier), the instance attribute is set,
as a plain ``setattr`` would.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["patch_method"]

_MISSING: Any = object()


class _Replacement:
    """One call of :func:`patch_method`: its value, until undone."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


class _PerInstanceMethod:
    """A non-data descriptor: ``name`` replaced for some instances, inherited for others.

    Being a non-data descriptor, it yields to an attribute an instance holds itself,
    as the function it stands in for does; read from the class, it gives what the
    class held before (so ``inspect.signature`` and ``autospec`` see the method).
    """

    def __init__(self, owner: type, name: str) -> None:
        self._owner = owner
        self._name = name
        self._own = owner.__dict__.get(name, _MISSING)
        """What ``owner`` held itself under ``name``: restored when the last goes."""
        # id of a patched instance -> a weak reference to it, its replacements (newest last)
        self._patched: dict[int, tuple[weakref.ref[Any], list[_Replacement]]] = {}

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is not None:
            entry = self._patched.get(id(instance))
            if entry is not None and entry[0]() is instance:
                return entry[1][-1].value
        inherited = self._inherited()
        get = getattr(type(inherited), "__get__", None)
        return inherited if get is None else get(inherited, instance, owner)

    def _inherited(self) -> Any:
        """The attribute the class would have without this descriptor."""
        if self._own is not _MISSING:
            return self._own
        for base in self._owner.__mro__[1:]:
            if self._name in base.__dict__:
                return base.__dict__[self._name]
        raise AttributeError(f"{self._owner.__name__!r} object has no attribute {self._name!r}")

    def add(self, instance: object, value: object) -> Callable[[], None]:
        key = id(instance)
        entry = self._patched.get(key)
        if entry is None or entry[0]() is not instance:
            entry = (weakref.ref(instance, lambda _: self._forget(key, entry)), [])
            self._patched[key] = entry
        replacement = _Replacement(value)
        entry[1].append(replacement)

        def undo() -> None:
            replacements = entry[1]
            if replacement in replacements:  # identity: _Replacement has no __eq__
                replacements.remove(replacement)
                if not replacements:
                    self._forget(key, entry)

        return undo

    def _forget(self, key: int, entry: object) -> None:
        if self._patched.get(key) is entry:
            del self._patched[key]
        if not self._patched:
            self._uninstall()

    def _uninstall(self) -> None:
        if _installed.get((self._owner, self._name)) is self:
            del _installed[(self._owner, self._name)]
        if self._owner.__dict__.get(self._name) is not self:
            return  # replaced on the class since: the newer attribute stays
        if self._own is _MISSING:
            delattr(self._owner, self._name)
        else:
            setattr(self._owner, self._name, self._own)


_installed: dict[tuple[type, str], _PerInstanceMethod] = {}
"""The descriptors on classes now, by class and name."""


def _descriptor(owner: type, name: str) -> _PerInstanceMethod | None:
    """The descriptor for ``name`` on ``owner``, installed now; ``None`` for a C type."""
    descriptor = _installed.get((owner, name))
    if descriptor is not None and owner.__dict__.get(name) is descriptor:
        return descriptor
    descriptor = _PerInstanceMethod(owner, name)
    try:
        setattr(owner, name, descriptor)
    except TypeError:  # "cannot set 'name' attribute of immutable type"
        return None
    _installed[(owner, name)] = descriptor
    return descriptor


def patch_method(instance: object, name: str, value: object) -> Callable[[], None]:
    """Make ``instance.name`` give ``value``, for ``instance`` alone, until undone.

    Read the method to wrap (``getattr(instance, name)``) before calling this: that is
    the one ``value`` calls. Patches of one name on one instance stack: each sees the
    one before as the method, and undoing one leaves the others in place.

    Args:
        instance: the object (an event loop, a selector) whose attribute is replaced.
        name: the attribute's name, usually a method its class or a base class defines.
        value: what ``instance.name`` gives from now on (a callable, usually).

    Returns:
        The undo callable; calling it again does nothing.

    Raises:
        TypeError: if neither the object's type nor the object takes the attribute
            (a type implemented in C, without an instance ``__dict__``).

    Example:
        ```python
        original = loop.create_connection
        undo = patch_method(loop, "create_connection", partial(checked, original))
        try:
            ...
        finally:
            undo()
        ```
    """
    descriptor = _descriptor(type(instance), name)
    if descriptor is not None:
        undo = descriptor.add(instance, value)
        if getattr(instance, name) is value:
            return undo
        undo()  # the instance holds the attribute itself, which hides the class's
        return _set_attribute(instance, name, value, getattr(instance, name))
    # A C type: its instances' dict, if any, is a plain dict, with no layout to lose.
    namespace: dict[str, Any] | None = getattr(instance, "__dict__", None)
    if namespace is None:
        raise TypeError(
            f"cannot replace {name!r} of {instance!r}: neither its type "
            f"{type(instance).__qualname__} nor the object takes new attributes"
        )
    return _set_attribute(instance, name, value, namespace.get(name, _MISSING))


def _set_attribute(
    instance: object, name: str, value: object, previous: object
) -> Callable[[], None]:
    """Set ``instance.name``; the undo puts back ``previous`` (removes it if missing)."""
    setattr(instance, name, value)
    done = False

    def undo() -> None:
        nonlocal done
        if done:
            return
        done = True
        if previous is _MISSING:
            delattr(instance, name)
        else:
            setattr(instance, name, previous)

    return undo

"""Replace a method of one object (an event loop) without costing it its fast attributes.

On CPython 3.11 and later an object keeps its attributes in a compact array laid out
by a key table its class shares (30 names at most), and the interpreter reads them
there by a fast path. Reading the object's ``__dict__`` (``vars(loop)``) on 3.11 and
3.12, or setting a name that no longer fits the shared table, moves them into an
ordinary dict for the rest of the object's life, and every attribute read in its
methods takes the slower path. An event loop reads its attributes dozens of times per
iteration: ``vars(loop)`` alone made every later ``await asyncio.sleep(0)`` on it cost
3,800 more instructions (+12 %) on 3.11 and 6,100 more (+17 %) on 3.12; seven new
names on a fresh loop (24 of its own) 1,800 more (+6 %) on 3.11 (callgrind, 20,000
iterations; see ``benchmarks/README.md``).

Changing a class is no cure when done per test: each change invalidates what the
interpreter specialised for the class (re-learnt at a cost in every method), and from
3.13 a class changed 1,000 times is never specialised again.

So there are two ways here, both undone exactly:

- :func:`patch_method`, for methods called now and then (a loop's transport factories,
  ``create_connection``, ``getaddrinfo``): a descriptor put on the object's class the
  first time, and left there (inert: it gives every other instance, and the class
  itself, what the class had), gives the replacement to the patched object alone. The
  class is changed once per name and process; :func:`restore_classes` takes the
  descriptors away when no object has a replacement.
- :func:`set_instance_attribute`, for methods called on every iteration (``time``):
  a plain instance attribute, set and removed without reading ``__dict__``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["patch_method", "restore_classes", "set_instance_attribute"]

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
        self.owner = owner
        self.name = name
        self.own = owner.__dict__.get(name, _MISSING)
        """What ``owner`` held itself under ``name``, put back by :func:`restore_classes`."""
        # id of a patched instance -> a weak reference to it, its replacements (newest last)
        self.patched: dict[int, tuple[weakref.ref[Any], list[_Replacement]]] = {}

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is not None:
            entry = self.patched.get(id(instance))
            if entry is not None and entry[0]() is instance:
                return entry[1][-1].value
        inherited = self._inherited()
        get = getattr(type(inherited), "__get__", None)
        return inherited if get is None else get(inherited, instance, owner)

    def _inherited(self) -> Any:
        """The attribute the class would have without this descriptor."""
        if self.own is not _MISSING:
            return self.own
        for base in self.owner.__mro__[1:]:
            if self.name in base.__dict__:
                return base.__dict__[self.name]
        raise AttributeError(f"{self.owner.__name__!r} object has no attribute {self.name!r}")

    def add(self, instance: object, value: object) -> Callable[[], None]:
        key = id(instance)
        entry = self.patched.get(key)
        if entry is None or entry[0]() is not instance:
            entry = (weakref.ref(instance, lambda _: self._forget(key, entry)), [])
            self.patched[key] = entry
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
        if self.patched.get(key) is entry:
            del self.patched[key]


_installed: dict[tuple[type, str], _PerInstanceMethod] = {}
"""The descriptors on classes, by class and name."""


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

    For a method called now and then: each read of ``name``, on any instance of the
    class, goes through a Python descriptor from then on. Read the method to wrap
    (``getattr(instance, name)``) before calling this: that is the one ``value`` calls.
    Patches of one name on one instance stack: each sees the one before as the method,
    and undoing one leaves the others in place.

    Args:
        instance: the object (an event loop) whose method is replaced.
        name: the method's name, one its class or a base class defines.
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
    if descriptor is None:
        return set_instance_attribute(instance, name, value)  # a C type
    undo = descriptor.add(instance, value)
    if getattr(instance, name) is value:
        return undo
    undo()  # the instance holds the attribute itself, which hides the class's
    return _set(instance, name, value, getattr(instance, name))


def set_instance_attribute(instance: object, name: str, value: object) -> Callable[[], None]:
    """Set ``instance.name`` to ``value`` until undone, without reading its ``__dict__``.

    For a method called all the time (a loop's ``time``), where a descriptor's call per
    read would cost more than the attribute. Whether the instance held ``name`` itself
    is told by comparing what it gives with what its class gives it: one it held equal
    to the class's method (``loop.time = loop.time``) is removed by the undo, which
    changes nothing it does.

    Args:
        instance: the object whose attribute is set.
        name: the attribute's name.
        value: its value until undone.

    Returns:
        The undo callable; calling it again does nothing.

    Raises:
        TypeError: if the object takes no such attribute (no instance ``__dict__``).

    Example:
        ```python
        undo = set_instance_attribute(loop, "time", clock.time)
        ```
    """
    previous = getattr(instance, name, _MISSING)
    if previous is not _MISSING and previous == _from_class(instance, name):
        previous = _MISSING  # the class's: the undo removes the instance attribute
    return _set(instance, name, value, previous)


def _set(instance: object, name: str, value: object, previous: object) -> Callable[[], None]:
    """Set ``instance.name``; the undo puts ``previous`` back, or removes it if missing."""
    try:
        setattr(instance, name, value)
    except AttributeError as error:
        raise TypeError(
            f"cannot replace {name!r} of {instance!r}: neither its type "
            f"{type(instance).__qualname__} nor the object takes new attributes"
        ) from error
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


def _from_class(instance: object, name: str) -> Any:
    """What ``instance.name`` would give without an attribute of its own."""
    for base in type(instance).__mro__:
        if name in base.__dict__:
            attribute = base.__dict__[name]
            get = getattr(type(attribute), "__get__", None)
            return attribute if get is None else get(attribute, instance, type(instance))
    return _MISSING


def restore_classes() -> None:
    """Take :func:`patch_method`'s descriptors off the classes no object patches now.

    The pytest plugin calls it when the session ends; each class gets back exactly
    what it held (its own method, or nothing, so that a base class's shows again).

    Example:
        ```python
        restore_classes()
        ```
    """
    for key, descriptor in list(_installed.items()):
        if descriptor.patched:
            continue
        del _installed[key]
        owner, name = key
        if owner.__dict__.get(name) is not descriptor:
            continue  # replaced on the class since: the newer attribute stays
        if descriptor.own is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, descriptor.own)

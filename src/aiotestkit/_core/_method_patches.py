"""Replace a method of one object (an event loop) without costing it its fast attributes.

On CPython 3.11 and later an object keeps its attributes in a compact array laid out
by a key table its class shares (30 names at most), and the interpreter reads them
there by a fast path. Reading the object's ``__dict__`` (``vars(loop)``) on 3.11 and
3.12, or setting a name that no longer fits the shared table, moves them into an
ordinary dict for the rest of the object's life, and every attribute read in its
methods takes the slower path. An event loop reads its attributes dozens of times per
iteration: ``vars(loop)`` alone made every later ``await asyncio.sleep(0)`` on it cost
3,800 more instructions (+12 %) on 3.11 and 6,100 more (+17 %) on 3.12; seven new
names on a fresh loop (24 of its own) 1,800 more (+6 %) on 3.11, and four new names
(26 of its own) 2,150 more on 3.13 (callgrind, 20,000 iterations;
``benchmarks/loop_attributes.py``, ``benchmarks/README.md``).

Changing a class is no cure when done per test: each change invalidates what the
interpreter specialised for the class (re-learnt at a cost in every method), and from
3.13 a class changed 1,000 times is never specialised again.

So there are three ways here, all undone exactly:

- :func:`patch_method`, for methods called now and then (a loop's transport factories,
  ``create_connection``, ``getaddrinfo``): a descriptor put on the object's class the
  first time, and left there (inert: it gives every other instance, and the class
  itself, what the class had), gives the replacement to the patched object alone. The
  class is changed once per name and process; :func:`restore_classes` takes the
  descriptors away when no object has a replacement.
- :func:`set_instance_attribute`, for methods called on every iteration (``time``):
  a plain instance attribute, set and removed without reading ``__dict__``.
- :func:`wrap_methods`, for observing calls rather than replacing them (the transports
  a loop makes, for the resource check): a function put on the class the first time
  calls a wrapper around the method for every instance; the wrapper looks the instance
  up in a registry of its own. Nothing is done per test but that registration; the
  class is changed once per name and process, as above.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "WRAPPER_FILENAME",
    "patch_method",
    "patch_methods",
    "restore_classes",
    "set_instance_attribute",
    "wrap_methods",
]

_MISSING: Any = object()


class _Patched(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a patched object, holding its replacements by name.

    The newest replacement of a name comes last. When the object is collected
    unrestored, its entry leaves :data:`_patched` (:func:`_collected`).
    """

    __slots__ = ("key", "methods")

    def __init__(self, instance: object, callback: Callable[[Any], None]) -> None:
        # weakref.ref.__new__ took both arguments and made the reference.
        self.key = id(instance)
        self.methods: dict[str, list[object]] = {}


def _collected(entry: _Patched) -> None:
    if _patched.get(entry.key) is entry:
        del _patched[entry.key]


_patched: dict[int, _Patched] = {}
"""The patched objects, by id."""


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

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is not None:
            entry = _patched.get(id(instance))
            if entry is not None:
                replacements = entry.methods.get(self.name)
                if replacements and entry() is instance:
                    return replacements[-1]
            if self.own is _MISSING:
                # The next class in the instance's order, looked up in C and bound.
                return getattr(super(self.owner, instance), self.name)
        inherited = self.own
        if inherited is _MISSING:
            inherited = _class_attribute(self.owner.__mro__[1:], self.name)
            if inherited is _MISSING:
                raise AttributeError(
                    f"{self.owner.__name__!r} object has no attribute {self.name!r}"
                )
        return _bind(inherited, instance, owner)


def _class_attribute(classes: tuple[type, ...], name: str) -> Any:
    """``name`` as the first of ``classes`` holds it itself (``_MISSING`` if none does)."""
    for cls in classes:
        if name in cls.__dict__:
            return cls.__dict__[name]
    return _MISSING


def _bind(attribute: Any, instance: object, owner: type | None) -> Any:
    """What reading ``attribute`` from a class gives ``instance`` (the class if ``None``)."""
    get = getattr(type(attribute), "__get__", None)
    return attribute if get is None else get(attribute, instance, owner)


_installed: dict[tuple[type, str], _PerInstanceMethod] = {}
"""The descriptors on classes, by class and name."""


def _descriptor(owner: type, name: str) -> _PerInstanceMethod | None:
    """The descriptor for ``name`` on ``owner``, installed now; ``None`` for a C type."""
    descriptor = _installed.get((owner, name))
    if descriptor is not None:
        return descriptor  # if the class's attribute was replaced since, it hides this one
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
    return patch_methods(instance, {name: value})


def patch_methods(instance: object, replacements: Mapping[str, object]) -> Callable[[], None]:
    """:func:`patch_method` for several names at once, with one undo for all of them.

    Args:
        instance: the object (an event loop) whose methods are replaced.
        replacements: each method's name and what ``instance.name`` gives from now on.

    Returns:
        The undo callable, which puts every method back; calling it again does nothing.

    Raises:
        TypeError: as :func:`patch_method`; the names replaced before it are put back.

    Example:
        ```python
        undo = patch_methods(loop, {"getaddrinfo": lookup, "sock_connect": connect})
        ```
    """
    entry = _patched.get(id(instance))
    if entry is None or entry() is not instance:
        try:
            entry = _Patched(instance, _collected)
        except TypeError:  # no weak reference to it (an int, a class with __slots__)
            return _set_attributes(instance, replacements)
        _patched[entry.key] = entry
    pushed: list[tuple[list[object], object]] = []
    attributes: list[Callable[[], None]] = []

    def undo() -> None:
        while pushed:
            stack, value = pushed.pop()
            for index in range(len(stack) - 1, -1, -1):
                if stack[index] is value:
                    del stack[index]
                    break
        if not any(entry.methods.values()) and _patched.get(entry.key) is entry:
            del _patched[entry.key]
        while attributes:
            attributes.pop()()

    owner = type(instance)
    try:
        for name, value in replacements.items():
            descriptor = _descriptor(owner, name)
            if descriptor is None:  # a C type
                attributes.append(set_instance_attribute(instance, name, value))
                continue
            stack = entry.methods.setdefault(name, [])
            stack.append(value)
            if getattr(instance, name) is value:
                pushed.append((stack, value))
                continue
            stack.pop()  # the instance holds the attribute itself, which hides the class's
            attributes.append(_set(instance, name, value, getattr(instance, name)))
    except BaseException:
        undo()
        raise
    return undo


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


def _set_attributes(instance: object, replacements: Mapping[str, object]) -> Callable[[], None]:
    """:func:`set_instance_attribute` for each name; one undo, all or none set."""
    undos: list[Callable[[], None]] = []

    def undo() -> None:
        while undos:
            undos.pop()()

    try:
        for name, value in replacements.items():
            undos.append(set_instance_attribute(instance, name, value))
    except BaseException:
        undo()
        raise
    return undo


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
    attribute = _class_attribute(type(instance).__mro__, name)
    return _MISSING if attribute is _MISSING else _bind(attribute, instance, type(instance))


WRAPPER_FILENAME = __file__
"""The file of the functions :func:`wrap_methods` puts on classes: a frame of it (in a
traceback, or above a creation site) is the wrapper's, not its caller's."""

MethodWrapper = Callable[..., Any]
"""``wrapper(instance, method, *args, **kwargs)``: one call of ``instance.method(*args,
**kwargs)``, with ``method`` bound as the instance would have it without the wrapper."""


class _ClassWrapper:
    """What :func:`wrap_methods` put on a class under one name, and what it replaced."""

    __slots__ = ("function", "name", "own", "owner")

    def __init__(self, owner: type, name: str, wrapper: MethodWrapper) -> None:
        self.owner = owner
        self.name = name
        self.own: Any = owner.__dict__.get(name, _MISSING)
        """What ``owner`` held itself under ``name``, put back by :func:`restore_classes`."""
        own = self.own
        if own is not _MISSING:

            def function(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
                return wrapper(instance, _bind(own, instance, type(instance)), *args, **kwargs)

        else:

            def function(instance: Any, /, *args: Any, **kwargs: Any) -> Any:
                # The next class in the instance's order, looked up in C and bound.
                return wrapper(instance, getattr(super(owner, instance), name), *args, **kwargs)

        wrapped = own if own is not _MISSING else _class_attribute(owner.__mro__[1:], name)
        if callable(wrapped):  # its name, docstring and signature (through __wrapped__)
            functools.update_wrapper(function, wrapped)
        self.function = function


_wrapped: dict[tuple[type, str], _ClassWrapper] = {}
"""The functions :func:`wrap_methods` put on classes, by class and name."""
_wrapped_sets: dict[type, Mapping[str, MethodWrapper]] = {}
"""Each class's wrappers as last given to :func:`wrap_methods` (found again in one lookup)."""
_wrapper_users: dict[type, int] = {}
"""The uses of each class's wrappers not released yet (:func:`restore_classes` keeps them)."""


def _release_wrappers(cls: type) -> None:
    count = _wrapper_users.get(cls, 0) - 1
    if count > 0:
        _wrapper_users[cls] = count
    else:
        _wrapper_users.pop(cls, None)


def wrap_methods(cls: type, wrappers: Mapping[str, MethodWrapper]) -> Callable[[], None]:
    """Route every call of the methods ``wrappers`` names, on instances of ``cls``, through them.

    Each ``wrappers[name]`` is called as ``wrapper(instance, method, *args, **kwargs)``
    for every call ``instance.name(*args, **kwargs)`` on an instance of ``cls`` (or of
    a subclass that does not define ``name`` itself), with ``method`` the method the
    instance would have without the wrapper, bound; the wrapper's result is the call's.
    An attribute an instance holds itself (a mock) still hides the class's, as before.

    The wrappers go on the class at the first call, once per class and name for the
    whole process (a later call with the same mapping costs one lookup), because
    changing a class costs every method of it its specialisations: they are called
    for every instance of the class, and must pass the call on unchanged for those
    they do not concern (keep your own registry of the instances you watch).
    :func:`restore_classes` takes them away once every use is released.

    Args:
        cls: the class whose methods are wrapped (the instance's ``type()``).
        wrappers: each method's name and its wrapper; pass the same mapping each time.

    Returns:
        The release of this use; call it once, when the caller stops watching.

    Raises:
        TypeError: if ``cls`` is a type implemented in C (nothing is wrapped then).

    Example:
        ```python
        def counted(loop, method, *args, **kwargs):
            calls[id(loop)] = calls.get(id(loop), 0) + 1
            return method(*args, **kwargs)

        release = wrap_methods(type(loop), {"_make_socket_transport": counted})
        ```
    """
    if _wrapped_sets.get(cls) is not wrappers:
        for name, wrapper in wrappers.items():
            if (cls, name) in _wrapped:
                continue
            installed = _ClassWrapper(cls, name, wrapper)
            try:
                setattr(cls, name, installed.function)
            except TypeError as error:  # "cannot set 'name' attribute of immutable type"
                raise TypeError(f"cannot wrap {name!r} of {cls.__qualname__}: {error}") from None
            _wrapped[(cls, name)] = installed
        _wrapped_sets[cls] = wrappers
    _wrapper_users[cls] = _wrapper_users.get(cls, 0) + 1
    return functools.partial(_release_wrappers, cls)


def restore_classes() -> None:
    """Take :func:`patch_method`'s descriptors and :func:`wrap_methods`'s wrappers off.

    Only from the classes no object patches now and whose wrappers no use holds. The
    pytest plugin calls it when the session ends; each class gets back exactly what it
    held (its own method, or nothing, so that a base class's shows again).

    Example:
        ```python
        restore_classes()
        ```
    """
    in_use = {
        (type(instance), name)
        for entry in _patched.values()
        if (instance := entry()) is not None
        for name, stack in entry.methods.items()
        if stack
    }
    for key, descriptor in list(_installed.items()):
        if key in in_use:
            continue
        del _installed[key]
        owner, name = key
        if owner.__dict__.get(name) is not descriptor:
            continue  # replaced on the class since: the newer attribute stays
        _put_back(owner, name, descriptor.own)
    for key, wrapper in list(_wrapped.items()):
        owner, name = key
        if owner in _wrapper_users:
            continue
        del _wrapped[key]
        _wrapped_sets.pop(owner, None)
        if owner.__dict__.get(name) is wrapper.function:  # else replaced since: it stays
            _put_back(owner, name, wrapper.own)


def _put_back(owner: type, name: str, own: object) -> None:
    """Give ``owner`` back what it held under ``name`` (nothing: remove the attribute)."""
    if own is _MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, own)

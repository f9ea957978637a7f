"""patch_method and wrap_methods: methods replaced for one object, or observed for all."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Iterator
from unittest import mock

import pytest

from aiotestkit._core import (
    patch_method,
    patch_methods,
    restore_classes,
    set_instance_attribute,
    wrap_methods,
)


class Base:
    def greet(self) -> str:
        return "base"


class Greeter(Base):
    def wave(self) -> str:
        return "own"


@pytest.fixture
def greeters() -> Iterator[tuple[Greeter, Greeter]]:
    before = dict(vars(Greeter))
    yield Greeter(), Greeter()
    restore_classes()
    assert dict(vars(Greeter)) == before, "the class was not restored"


def test_one_instance_is_patched_and_the_others_keep_the_class_method(
    greeters: tuple[Greeter, Greeter],
) -> None:
    patched, other = greeters
    undo = patch_method(patched, "greet", lambda: "patched")
    assert patched.greet() == "patched"
    assert other.greet() == "base"
    assert Greeter.greet is Base.greet  # read from the class: the method itself
    assert list(inspect.signature(Greeter.greet).parameters) == ["self"]
    undo()
    undo()  # a second undo does nothing
    assert patched.greet() == "base"


def test_a_method_the_class_defines_itself_is_put_back(
    greeters: tuple[Greeter, Greeter],
) -> None:
    patched, _ = greeters
    own = vars(Greeter)["wave"]
    undo = patch_method(patched, "wave", lambda: "patched")
    assert patched.wave() == "patched"
    undo()
    assert patched.wave() == "own"
    restore_classes()
    assert vars(Greeter)["wave"] is own
    assert patched.wave() == "own"


def test_patches_stack_and_each_undo_removes_its_own(greeters: tuple[Greeter, Greeter]) -> None:
    patched, _ = greeters
    first = patched.greet
    undo_outer = patch_method(patched, "greet", lambda: "outer " + first())
    second = patched.greet
    undo_inner = patch_method(patched, "greet", lambda: "inner " + second())
    assert patched.greet() == "inner outer base"
    undo_outer()  # out of order: the inner one stays, still calling what it wrapped
    assert patched.greet() == "inner outer base"
    undo_inner()
    assert patched.greet() == "base"


def test_several_methods_are_patched_at_once_and_put_back_by_one_undo(
    greeters: tuple[Greeter, Greeter],
) -> None:
    patched, other = greeters
    undo = patch_methods(patched, {"greet": lambda: "hello", "wave": lambda: "bye"})
    assert (patched.greet(), patched.wave()) == ("hello", "bye")
    assert (other.greet(), other.wave()) == ("base", "own")
    inner = patch_method(patched, "wave", lambda: "inner")
    undo()
    undo()
    assert (patched.greet(), patched.wave()) == ("base", "inner")
    inner()
    assert (patched.greet(), patched.wave()) == ("base", "own")


def test_an_attribute_the_instance_holds_itself_is_replaced_and_put_back(
    greeters: tuple[Greeter, Greeter],
) -> None:
    patched, _ = greeters
    with mock.patch.object(patched, "greet", return_value="mocked"):
        undo = patch_method(patched, "greet", lambda: "patched")
        assert patched.greet() == "patched"
        undo()
        assert patched.greet() == "mocked"
    assert patched.greet() == "base"


def test_a_mock_patched_later_takes_over_until_it_ends(greeters: tuple[Greeter, Greeter]) -> None:
    patched, _ = greeters
    undo = patch_method(patched, "greet", lambda: "patched")
    with mock.patch.object(patched, "greet", return_value="mocked"):
        assert patched.greet() == "mocked"
    assert patched.greet() == "patched"
    undo()


def test_the_class_keeps_its_descriptor_while_an_object_is_patched() -> None:
    patched = Greeter()
    undo = patch_method(patched, "greet", lambda: "patched")
    restore_classes()
    assert patched.greet() == "patched"
    undo()
    assert "greet" in vars(Greeter)  # inert until restore_classes()
    assert patched.greet() == "base"
    restore_classes()
    assert "greet" not in vars(Greeter)


def test_the_class_is_restored_when_a_patched_object_is_collected_unrestored() -> None:
    before = dict(vars(Greeter))
    patched = Greeter()
    patch_method(patched, "greet", lambda: "patched")
    assert "greet" in vars(Greeter)
    del patched
    gc.collect()
    restore_classes()
    assert dict(vars(Greeter)) == before
    assert Greeter().greet() == "base"


def test_an_instance_attribute_is_set_and_removed_or_put_back() -> None:
    greeter = Greeter()
    undo = set_instance_attribute(greeter, "greet", lambda: "patched")
    assert greeter.greet() == "patched"
    undo()
    undo()
    assert "greet" not in vars(greeter)
    with mock.patch.object(greeter, "greet", return_value="mocked"):
        undo = set_instance_attribute(greeter, "greet", lambda: "patched")
        assert greeter.greet() == "patched"
        undo()
        assert greeter.greet() == "mocked"
    assert greeter.greet() == "base"


def test_an_object_of_a_c_type_gets_an_instance_attribute_or_a_type_error() -> None:
    def function() -> None: ...

    undo = patch_method(function, "label", "patched")  # a C type with an instance dict
    assert vars(function)["label"] == "patched"
    undo()
    assert not hasattr(function, "label")
    with pytest.raises(TypeError, match=r"cannot replace 'real' of 1: neither its type int"):
        patch_method(1, "real", 2)


def test_a_loop_runs_with_its_methods_patched_and_comes_back_whole() -> None:
    loop = asyncio.new_event_loop()
    try:
        calls: list[float] = []
        real_time = loop.time

        def time() -> float:
            calls.append(real_time())
            return calls[-1]

        undo = patch_method(loop, "time", time)
        loop.run_until_complete(asyncio.sleep(0.001))
        assert calls
        undo()
        assert loop.time.__func__ is asyncio.BaseEventLoop.time
        restore_classes()
        assert "time" not in vars(type(loop))
    finally:
        loop.close()


# -- wrap_methods: calls observed for every instance of a class -------------------------


def _tagged(instance: Greeter, method: object, *args: object) -> str:
    assert callable(method)
    return f"{method(*args)} (wrapped for {type(instance).__name__})"


def test_wrapped_methods_see_every_call_with_the_method_bound(
    greeters: tuple[Greeter, Greeter],
) -> None:
    first, second = greeters
    release = wrap_methods(Greeter, {"greet": _tagged, "wave": _tagged})
    assert first.greet() == "base (wrapped for Greeter)"  # inherited from Base
    assert second.wave() == "own (wrapped for Greeter)"  # the class's own
    assert Base().greet() == "base"  # the base class is left alone
    assert list(inspect.signature(first.greet).parameters) == []
    assert Greeter.greet.__name__ == "greet"
    release()


def test_wrappers_stay_while_a_use_holds_them_then_the_class_is_restored(
    greeters: tuple[Greeter, Greeter],
) -> None:
    instance, _ = greeters
    own = vars(Greeter)["wave"]
    wrappers = {"greet": _tagged, "wave": _tagged}
    release = wrap_methods(Greeter, wrappers)
    release_again = wrap_methods(Greeter, wrappers)  # installed already: only counted
    release()
    restore_classes()
    assert instance.wave() == "own (wrapped for Greeter)", "restored while still in use"
    release_again()
    restore_classes()
    assert vars(Greeter)["wave"] is own
    assert "greet" not in vars(Greeter)
    assert instance.greet() == "base"


def test_mocks_of_the_instance_or_of_a_base_class_still_work(
    greeters: tuple[Greeter, Greeter],
) -> None:
    instance, other = greeters
    release = wrap_methods(Greeter, {"greet": _tagged})
    with mock.patch.object(instance, "greet", return_value="mocked"):
        assert instance.greet() == "mocked"  # the instance's own attribute hides it
        assert other.greet() == "base (wrapped for Greeter)"
    with mock.patch.object(Base, "greet", return_value="patched base"):
        assert instance.greet() == "patched base (wrapped for Greeter)"  # called at once
    release()


def test_a_type_in_c_cannot_be_wrapped() -> None:
    with pytest.raises(TypeError, match="cannot wrap 'append' of list"):
        wrap_methods(list, {"append": _tagged})

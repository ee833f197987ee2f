from __future__ import annotations

import sys

from vectorizer.hugepages import reexec_plan


def test_glibc_gets_the_tunable_added_once() -> None:
    plan = reexec_plan(["serve", "--port", "1"], {"PATH": "/bin"}, "glibc")
    assert plan is not None
    command, env = plan
    assert command == [sys.executable, "-P", "-m", "vectorizer", "serve", "--port", "1"]
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert reexec_plan(["serve"], env, "glibc") is None  # the re-executed process stays


def test_other_tunables_are_kept_and_an_explicit_choice_stands() -> None:
    plan = reexec_plan(["serve"], {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "glibc")
    assert plan is not None
    assert plan[1]["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    chosen = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}
    assert reexec_plan(["serve"], chosen, "glibc") is None


def test_the_folder_the_package_came_from_comes_first_on_the_import_path() -> None:
    """(When the interpreter would not find it there itself: ``package_source``.)"""
    env = {"PYTHONPATH": "/elsewhere"}
    plan = reexec_plan(["serve"], env, "glibc", "/src")
    assert plan is not None and plan[1]["PYTHONPATH"] == "/src:/elsewhere"
    plan = reexec_plan(["serve"], {}, "glibc", "/src")
    assert plan is not None and plan[1]["PYTHONPATH"] == "/src"
    plan = reexec_plan(["serve"], {"PYTHONPATH": "/src:/x"}, "glibc", "/src")
    assert plan is not None and plan[1]["PYTHONPATH"] == "/src:/x"


def test_nothing_to_do_without_glibc() -> None:
    assert reexec_plan(["serve"], {}, "") is None
    assert reexec_plan(["serve"], {}, "musl") is None

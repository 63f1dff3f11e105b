"""uplink's modules import each other in one direction only: no import circle (grimp, the graph
import-linter builds; imports inside functions and under TYPE_CHECKING count too). The package's
face (uplink/__init__.py) imports every module and is left out: no module imports it."""

from __future__ import annotations

import itertools

import grimp
import pytest


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("uplink", cache_dir=None)


def test_no_module_imports_the_face(graph: grimp.ImportGraph) -> None:
    assert graph.find_modules_that_directly_import("uplink") == set()


def test_uplink_has_no_import_cycle(graph: grimp.ImportGraph) -> None:
    # The face imports everything and nothing imports it, so it closes no circle.
    modules = sorted(graph.modules - {"uplink"})
    assert len(modules) > 10, modules
    cycles = [
        (a, b, graph.find_shortest_chain(importer=a, imported=b),
         graph.find_shortest_chain(importer=b, imported=a))
        for a, b in itertools.combinations(modules, 2)
        if graph.find_shortest_chain(importer=a, imported=b)
        and graph.find_shortest_chain(importer=b, imported=a)
    ]
    assert cycles == []


def test_the_check_sees_a_cycle() -> None:
    g = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        g.add_module(name)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    g.add_import(importer="p.c", imported="p.a")
    assert g.find_shortest_chain(importer="p.a", imported="p.c") == ("p.a", "p.b", "p.c")
    assert g.find_shortest_chain(importer="p.c", imported="p.a") == ("p.c", "p.a")

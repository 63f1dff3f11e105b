"""Imports go one way: agent -> motion, uplink. motion imports nothing of ours; uplink nothing from
agent or motion; inside agent, the wings keep to their lanes (the same rules as the import-linter
contracts in pyproject.toml). Checked on the source (AST), so a lazy import inside a function
counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"motion": {"agent", "uplink"}, "uplink": {"agent", "motion"}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules found in {package}/"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_top_levels(f) & FORBIDDEN[package]) for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import agent.x\nfrom uplink import age\ndef f():\n    import motion\n")
    assert imported_top_levels(probe) == {"agent", "uplink", "motion"}


def test_picamera2_only_imported_lazily() -> None:
    """picamera2 cannot import off the Pi: only the adapter may import it, and only in a function.
    """
    for f in sorted((ROOT / "agent").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                        else [node.module or ""])
                assert not any(m.startswith("picamera2") for m in mods), f"{f} imports picamera2"


# agent's wings (README "Architecture"): what each may not import, lazily or not.
_ROOT_AND_TOOLS = {"agent.app", "agent.cli", "agent.tools"}
WING_FORBIDDEN = {
    "agent/camera": {"agent.recording", "agent.device", "agent.delivery", "agent.runtime",
                     "agent.owner"} | _ROOT_AND_TOOLS,
    "agent/store": {"agent.recording", "agent.device", "agent.delivery", "agent.runtime",
                    "agent.owner"} | _ROOT_AND_TOOLS,
    "agent/recording": {"agent.device", "agent.delivery", "agent.runtime",
                        "agent.owner"} | _ROOT_AND_TOOLS,
    "agent/device": {"agent.recording", "agent.delivery", "agent.runtime",
                     "agent.owner"} | _ROOT_AND_TOOLS,
    "agent/delivery": {"agent.runtime", "agent.owner"} | _ROOT_AND_TOOLS,
    "agent/runtime": {"agent.owner"} | _ROOT_AND_TOOLS,
    "agent/owner": {"agent.camera", "agent.store", "agent.recording", "agent.device",
                    "agent.delivery", "agent.runtime", "agent.tools", "agent.app", "agent.config",
                    "agent.paths", "agent.sqlite", "motion"},
    # footage requests (issue 16): the requester's tool imports uplink and agent.errors only
    "agent/requester": {"agent.camera", "agent.store", "agent.recording", "agent.device",
                        "agent.delivery", "agent.runtime", "agent.tools", "agent.owner",
                        "agent.app", "agent.config", "agent.paths", "agent.sqlite",
                        "agent.logs", "motion"},
}
# Only these modules sit at the top of agent/: the composition root, the CLI entry and the
# helpers every wing shares.
TOP_LEVEL = {"__init__", "app", "cli", "config", "errors", "logs", "paths", "progress", "sqlite"}


def imported_modules(path: Path) -> set[str]:
    """Every absolute module an import names, ``from a.b import c`` giving a.b and a.b.c."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _hits(names: set[str], forbidden: set[str]) -> list[str]:
    return sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))


@pytest.mark.parametrize("wing", sorted(WING_FORBIDDEN))
def test_wing_imports_stay_in_lane(wing: str) -> None:
    files = sorted((ROOT / wing).rglob("*.py"))
    assert files, f"no modules found in {wing}/"
    offenders = {str(f.relative_to(ROOT)): _hits(imported_modules(f), WING_FORBIDDEN[wing])
                 for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_wing_checker_sees_from_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from agent import delivery\n"
                     "def f():\n    from agent.runtime.frame_loop import x\n")
    assert _hits(imported_modules(probe), {"agent.delivery", "agent.runtime"}) == [
        "agent.delivery", "agent.runtime.frame_loop", "agent.runtime.frame_loop.x"]


def test_only_the_root_and_shared_helpers_sit_at_the_top_of_agent() -> None:
    top = {f.stem for f in (ROOT / "agent").glob("*.py")}
    assert top <= TOP_LEVEL, f"move {sorted(top - TOP_LEVEL)} into the wing that owns it"


UPLINK_MODULES = frozenset(p.stem for p in (ROOT / "uplink").glob("*.py")) - {"__init__"}


def uplink_internals_imported(path: Path) -> list[str]:
    """``import uplink.X``, ``from uplink.X import ...`` and ``from uplink import X`` (X a module):
    agent must take uplink's names from its face (``from uplink import Manifest``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("uplink.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("uplink."):
                found.append(node.module)
            elif node.module == "uplink":
                found += [f"uplink.{a.name}" for a in node.names if a.name in UPLINK_MODULES]
    return found


def test_agent_imports_uplink_only_through_its_face() -> None:
    offenders = {str(f.relative_to(ROOT)): uplink_internals_imported(f)
                 for f in sorted((ROOT / "agent").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_face_checker_sees_internal_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import uplink.mqtt\nfrom uplink.age import encrypt\nfrom uplink import jws\n"
                     "from uplink import Manifest\ndef f():\n    from uplink.s3 import S3Error\n")
    assert sorted(uplink_internals_imported(probe)) == [
        "uplink.age", "uplink.jws", "uplink.mqtt", "uplink.s3"]

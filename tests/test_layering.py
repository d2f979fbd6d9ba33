"""Layering: ff_core imports none of ours and no torch; the client never imports the trainer or torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"ff_core": REPO / "core" / "ff_core", "ff_trainer": REPO / "trainer" / "ff_trainer",
            "ff_plugins": REPO / "plugins" / "ff_plugins", "ff_client": REPO / "client" / "ff_client",
            "ff_operator": REPO / "operator" / "ff_operator"}
FORBIDDEN = {
    "ff_core": {"ff_trainer", "ff_plugins", "ff_client", "torch", "kopf", "kubernetes", "matplotlib", "scipy"},
    "ff_trainer": {"ff_client", "ff_plugins", "kopf", "kubernetes"},
    "ff_plugins": {"ff_client", "kopf", "kubernetes"},
    "ff_client": {"ff_trainer", "ff_plugins", "ff_operator", "torch"},
    "ff_operator": {"ff_trainer", "ff_plugins", "ff_client", "torch", "numpy", "scipy", "matplotlib", "boto3"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_layering(package):
    offences = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        bad = imported_roots(path) & FORBIDDEN[package]
        if bad:
            offences.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offences, offences


ROOMS = REPO / "client" / "ff_client"


def test_the_client_rooms_keep_to_themselves():
    """fit/ imports neither click nor kubernetes (notebooks use it); cli/ is the only place that imports click;
    cluster/ knows nothing of click or the fits."""
    offences = []
    for path in sorted(ROOMS.rglob("*.py")):
        room = path.relative_to(ROOMS).parts[0]
        roots = imported_roots(path)
        modules = _imported_modules(path)
        bad = set()
        if room != "cli":
            bad |= roots & {"click"}
        if room == "fit":
            bad |= roots & {"kubernetes", "kopf", "jsonschema"} | {m for m in modules if m.startswith("ff_client.cl")}
        if room == "cluster":
            bad |= {m for m in modules if m.startswith(("ff_client.fit", "ff_client.cli"))}
        if bad:
            offences.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offences, offences


def test_commands_call_the_sdk_not_each_other():
    """A cli/ command imports from cli/ only output and options (terminal output, options several commands
    take); the SDK beneath (api, source, planview) imports neither click nor anything of cli/."""
    offences = []
    for path in sorted((ROOMS / "cli").glob("*.py")):
        bad = {m for m in _imported_modules(path) if m.startswith("ff_client.cli.")} - {
            "ff_client.cli.output", "ff_client.cli.options"}
        if bad:
            offences.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    for name in ("api", "source", "planview"):
        path = ROOMS / f"{name}.py"
        bad = {m for m in _imported_modules(path) if m.split(".")[0] == "click" or m.startswith("ff_client.cli")}
        if bad:
            offences.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offences, offences


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_ffctl_starts_without_the_fitting_libraries():
    """Every ffctl command imports the CLI whole; scipy, matplotlib and torch wait for the command that needs them
    (scipy alone doubled the start-up of `ffctl run`, `status`, `submit`: 0.73 s against 0.38 s)."""
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, ff_client.cli; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert not {m.split(".")[0] for m in loaded} & {"scipy", "matplotlib", "torch"}


def test_no_package_shadows_the_stdlib_operator_module():
    # A package called `operator` would shadow the standard library's (imported at start-up by Python).
    shadows = [p for p in REPO.rglob("operator/__init__.py") if ".venv" not in p.parts]
    assert not shadows
    import operator

    assert operator.__file__.startswith(str(Path(ast.__file__).parent))  # the stdlib's, not ours


def test_every_module_opens_with_a_docstring():
    for root in PACKAGES.values():
        for path in root.rglob("*.py"):
            assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(REPO)} has no docstring"

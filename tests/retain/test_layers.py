"""The layers point one way: features <- modeling <- training, serving, analytics <- retain (the CLI).

training, serving and analytics never import each other; the simulator (the demo shop) is imported only by
the CLI, the tests and the benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "features": {"modeling", "training", "serving", "analytics", "retain", "simulator"},
    "modeling": {"training", "serving", "analytics", "retain", "simulator"},
    "training": {"serving", "analytics", "retain", "simulator"},
    "serving": {"training", "analytics", "retain", "simulator"},
    "analytics": {"training", "serving", "retain", "simulator"},
    "simulator": {"training", "serving", "analytics", "retain"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer):
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_packages(p) & FORBIDDEN[layer])
        for p in (ROOT / layer).rglob("*.py")
        if imported_packages(p) & FORBIDDEN[layer]
    }
    assert not offenders, f"{layer}/ must not import {sorted(FORBIDDEN[layer])}: {offenders}"


def test_every_command_option_has_help():
    from typer.main import get_command

    from retain.cli import app

    cli = get_command(app)
    for name, command in cli.commands.items():
        assert command.help, f"command {name} has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"option --{param.name} of {name} has no help text"

"""Lists Tessera's packages: the top folders map onto `tessera.*`, which discovery cannot follow."""

from pathlib import Path

from setuptools import setup

ROOTS = {"core": "tessera.core", "operator": "tessera.operator", "outposts": "tessera.outposts"}


def _packages() -> list[str]:
    found = []
    for folder, name in ROOTS.items():
        if not Path(folder).is_dir():  # a top folder with no code yet is not in git
            continue
        found.append(name)
        for init in sorted(Path(folder).rglob("__init__.py")):
            parts = init.parent.relative_to(folder).parts
            found.append(".".join((name, *parts)))
    return found


setup(packages=_packages())

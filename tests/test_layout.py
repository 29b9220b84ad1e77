"""Guards of the package layout (ARCHITECTURE.md): the top folders never import as bare names.

`core/`, `operator/` and `outposts/` are mapped onto `tessera.*`. A bare `import core` would only
work with the repository root on sys.path, where `operator/` would also shadow the standard
library's `operator`; so the code must always say `tessera.core`, `tessera.operator`, ...
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = re.compile(
    r"^\s*(?:from|import)\s+(?:core|outposts)(?:\.|\s|$)|^\s*(?:from|import)\s+operator\.", re.M
)


def _python_files() -> list[Path]:
    found: list[Path] = []
    for folder in ("core", "operator", "outposts", "tests", "bench"):
        found.extend((ROOT / folder).rglob("*.py"))
    return found


def test_no_bare_imports_of_the_top_folders() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in _python_files()
        for text in [path.read_text()]
        for m in BARE.finditer(text)
    ]
    assert offenders == []


def test_the_guard_recognises_bare_imports() -> None:
    assert BARE.search("import core\n")
    assert BARE.search("from outposts.proxy import x\n")
    assert BARE.search("from operator.handlers import x\n")
    assert not BARE.search("import operator\nfrom tessera.core import store\n")


def test_top_folders_are_namespace_portions() -> None:
    for folder in ("core", "operator", "outposts"):
        assert not (ROOT / folder / "__init__.py").exists(), folder


def test_standard_operator_module_is_not_shadowed() -> None:
    import operator

    assert hasattr(operator, "itemgetter")

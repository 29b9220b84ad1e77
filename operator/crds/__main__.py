"""`python -m tessera.operator.crds [DIR ...]`: write the CRDs into each DIR (default `crds`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tessera.operator import crds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tessera.operator.crds",
        description="Write Tessera's CustomResourceDefinitions, one YAML file per kind.",
    )
    parser.add_argument("folders", nargs="*", type=Path, default=[Path("crds")], metavar="DIR")
    args = parser.parse_args(argv)
    for folder in args.folders:
        for path in crds.write(folder):
            print(path)


if __name__ == "__main__":
    main()

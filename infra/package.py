"""Build the zip that a publish of the Function app would send: the app, nothing else.

``func azure functionapp publish`` zips the app folder minus what ``.funcignore``
names (gitignore-style patterns); Azure then installs ``requirements.txt``
(remote build). This does the same, so that what is deployed can be checked:
``python infra/package.py [--output dist/app.zip]`` prints the files it packed.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from pathlib import Path

__all__ = ["app_files", "build_package", "ignore_patterns"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def ignore_patterns(app_dir: Path) -> list[str]:
    """The patterns of ``.funcignore`` (comments and blank lines dropped)."""
    lines = (app_dir / ".funcignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _ignored(relative: Path, is_dir: bool, patterns: list[str]) -> bool:
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        bare = pattern.rstrip("/").lstrip("/")
        if dir_only and not is_dir:
            continue
        # A pattern without a slash matches a name at any depth, as in .gitignore.
        if "/" not in bare and fnmatch.fnmatch(relative.name, bare):
            return True
        if fnmatch.fnmatch(relative.as_posix(), bare):
            return True
    return False


def app_files(app_dir: Path) -> list[Path]:
    """Files of ``app_dir`` that a publish sends (relative paths, sorted)."""
    patterns = ignore_patterns(app_dir)
    found: list[Path] = []

    def walk(folder: Path) -> None:
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(app_dir)
            if _ignored(relative, entry.is_dir(), patterns):
                continue
            if entry.is_dir():
                walk(entry)
            elif entry.is_file():
                found.append(relative)

    walk(app_dir)
    return found


def build_package(app_dir: Path, output: Path) -> list[Path]:
    """Write the zip; returns the files in it."""
    files = app_files(app_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(app_dir / relative, relative.as_posix())
    return files


def main(argv: list[str]) -> int:
    """Build the package and list its files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "dist" / "app.zip")
    args = parser.parse_args(argv)
    for relative in build_package(args.app_dir, args.output):
        print(relative.as_posix())
    print(f"-> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

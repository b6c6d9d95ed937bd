"""Install Microsoft's generated FunctionRpc modules as the package ``function_rpc``.

The gRPC protocol between the Functions host and a language worker is defined by
Microsoft (azure-functions-language-worker-protobuf). The generated Python
modules ship inside a PyPI wheel, ``azure-functions-runtime-v1``, under
``tests/protos/``; installing that wheel would add a top-level ``tests``
package, so this script downloads it (pinned, hash-checked) and copies only
those modules into each given site-packages folder. Nothing of Microsoft's is
committed to this repository.

usage: python install_protos.py PIP_PYTHON SITE_PACKAGES [SITE_PACKAGES ...]
"""

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "azure-functions-runtime-v1==1.2.0"
WHEEL_SHA256 = "6ae0abb681e28c61a404b52e1c4481f203bb113e5027fbe908989ea9585a02a0"
SOURCE_PREFIX = "tests/protos/"
PACKAGE = "function_rpc"


def main(argv: list[str]) -> int:
    """Download the wheel with ``PIP_PYTHON -m pip`` and unpack the modules."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    pip_python, targets = argv[0], [Path(p) for p in argv[1:]]
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [pip_python, "-m", "pip", "download", "--quiet", "--no-deps", "-d", scratch, WHEEL],
            check=True,
        )
        wheel = next(Path(scratch).glob("*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            print(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}", file=sys.stderr)
            return 1
        with zipfile.ZipFile(wheel) as archive:
            modules = {
                name[len(SOURCE_PREFIX) :]: archive.read(name)
                for name in archive.namelist()
                if name.startswith(SOURCE_PREFIX) and name.endswith(".py")
            }
    for target in targets:
        for relative, content in modules.items():
            dest = target / PACKAGE / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
        print(f"installed {len(modules)} FunctionRpc modules into {target / PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

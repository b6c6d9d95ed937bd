"""``python -m emulator {host,azure} ...``: start one of the local stand-ins."""

import importlib
import sys

_COMMANDS = {
    "host": "emulator.host.cli",
    "azure": "emulator.azure.cli",
}


def main(argv: list[str]) -> int:
    """Dispatch to the stand-in named by the first argument."""
    if not argv or argv[0] not in _COMMANDS:
        print(f"usage: python -m emulator {{{','.join(_COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(_COMMANDS[argv[0]])
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Types for the parameters of activity functions, as Microsoft's Python worker accepts them.

The worker checks each binding parameter's annotation and refuses a PEP 585
generic such as ``dict[str, Any]`` ("invalid non-type annotation",
azure-functions-durable-python#468); one refused function aborts indexing of
the whole app. ``typing.Dict`` passes, so activity inputs use this alias.
"""

from typing import Any, Dict  # noqa: UP035 (see above)

__all__ = ["JsonObject"]

JsonObject = Dict[str, Any]  # noqa: UP006 (see above)

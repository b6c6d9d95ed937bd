"""The functions the repository's app declares, as Python sees it (read once per test run)."""

from __future__ import annotations

import functools


@functools.cache
def declared_function_names() -> tuple[str, ...]:
    """Sorted names from ``function_app.app.get_functions()``.

    Cached: the library builds the functions anew on each call and refuses the
    second build in one process (duplicate names).
    """
    import function_app

    return tuple(sorted(f.get_function_name() for f in function_app.app.get_functions()))

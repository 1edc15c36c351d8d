"""Fail early, with a clear message, on a Python older than 3.11."""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 - runs under whatever python3 the user has
    sys.exit(f"certplane needs Python 3.11 or newer; {sys.executable} is {sys.version.split()[0]}")

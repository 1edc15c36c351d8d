"""Host paths and the directory they are read from.

Discovery reports host paths (``/etc/nginx/nginx.conf``) but reads them below a root that is
``/`` on a real host and a fixture tree in tests. :class:`HostRoot` is the only place where the
two meet; every file read goes through :meth:`HostRoot.read_bytes`, which refuses anything that
is not a regular file or is larger than the caller's bound.
"""

from __future__ import annotations

import errno
import glob
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class NotRegularFileError(OSError):
    """The path names a directory, FIFO, device or socket; reading it could block or mislead."""


class FileTooLargeError(OSError):
    """The file is larger than the caller's bound; nothing was read."""


def errno_name(exc: OSError) -> str:
    """``EACCES``-style name of an OSError, stable across locales."""
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def join_host(base: PurePosixPath, value: str) -> PurePosixPath:
    """``value`` resolved against ``base`` as the kernel would (absolute values win), normalised."""
    return PurePosixPath(posixpath.normpath(posixpath.join(str(base), value)))


def has_glob(value: str) -> bool:
    """Whether ``value`` holds shell wildcard characters."""
    return any(ch in value for ch in "*?[")


@dataclass(frozen=True)
class HostRoot:
    """The directory that host path ``/`` maps to."""

    root: Path = Path("/")

    def real(self, path: PurePosixPath | str) -> Path:
        """The filesystem path for host path ``path`` (which must be absolute)."""
        host = PurePosixPath(posixpath.normpath(str(path)))
        if not host.is_absolute():
            raise ValueError(f"not an absolute host path: {path}")
        return self.root.joinpath(*host.parts[1:])

    def host(self, real: Path) -> str:
        """The host path for ``real``, a path below :attr:`root` (symlinks not resolved)."""
        return str(PurePosixPath("/", *real.relative_to(self.root).parts))

    def exists(self, path: PurePosixPath | str) -> bool:
        """Whether host path ``path`` exists (following symlinks)."""
        return self.real(path).exists()

    def is_dir(self, path: PurePosixPath | str) -> bool:
        """Whether host path ``path`` is a directory (following symlinks)."""
        return self.real(path).is_dir()

    def glob(self, pattern: PurePosixPath) -> list[PurePosixPath]:
        """Host paths matching ``pattern``, sorted; like glob(3), ``*`` skips dot files."""
        relative = str(pattern).lstrip("/")
        found = glob.glob(relative, root_dir=self.root)
        return sorted(PurePosixPath("/", match) for match in found)

    def files_below(self, directory: PurePosixPath) -> list[PurePosixPath]:
        """Every non-hidden file below ``directory``, recursively, in sorted path order."""
        found: list[PurePosixPath] = []
        for top, dirs, files in os.walk(self.real(directory)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [PurePosixPath(self.host(Path(top) / f)) for f in files if f[0] != "."]
        return sorted(found)

    def read_bytes(self, path: PurePosixPath | str, limit: int) -> bytes:
        """The content of regular file ``path``, at most ``limit`` bytes.

        Raises :class:`NotRegularFileError`, :class:`FileTooLargeError` or any other
        :class:`OSError` from opening or reading.
        """
        return read_regular_file(self.real(path), limit)


def read_regular_file(real: Path, limit: int) -> bytes:
    """Read ``real`` if it is a regular file of at most ``limit`` bytes (see
    :meth:`HostRoot.read_bytes`). Opened non-blocking so a FIFO swapped in cannot hang us."""
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(f"not a regular file: {real}")
        if info.st_size > limit:
            raise FileTooLargeError(f"{info.st_size} bytes, limit {limit}")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLargeError(f"more than {limit} bytes")
    return data

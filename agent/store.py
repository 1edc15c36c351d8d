"""Writing certificate, key and state files on the host: atomically, inside the roots, no symlinks.

Every write goes through :func:`write_atomic`:

1. the target must lie inside one of the configured ``roots`` once ``..`` is resolved; the root
   itself may be reached through a symlink (the operator chose it), nothing below it may;
2. the parent directory is opened component by component from the root with ``O_NOFOLLOW``, so a
   symlink swapped in after the check is refused by the kernel rather than followed;
3. the new content goes to a temporary file in the same directory, created with
   ``O_CREAT|O_EXCL|O_NOFOLLOW`` and its final mode, so a key is never readable by others, not
   even for an instant; it is chowned (when asked), written, fsync'ed, renamed over the target,
   and the directory is fsync'ed. A reader sees the old file or the new one, never a mix.

:func:`deploy` writes a set of files as one change that can be undone: it first keeps the
current version of every target beside it (``<path>.certplane-prev``), then writes the new ones.
A failure part-way rolls back what was written. :func:`rollback` puts every previous file back
(and removes the files that did not exist before); :func:`commit` ends the change and *keeps*
the ``.certplane-prev`` files until the next deploy of the same targets replaces them, so an
operator can still undo the last deployment by hand.

NOTE(secrets): nothing here logs or formats file contents; errors name paths only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

PREVIOUS_SUFFIX = ".certplane-prev"
TEMPORARY_MARK = ".certplane-tmp-"

StrPath = str | os.PathLike[str]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreError(Exception):
    """A file operation was refused or failed. The message names paths, never contents."""


class Owner(NamedTuple):
    """Who a written file belongs to; ``-1`` leaves that id as the creating process makes it."""

    uid: int = -1
    gid: int = -1


@dataclass(frozen=True)
class FileSpec:
    """The content of one file to deploy and how it is to be stored."""

    data: bytes = field(repr=False)
    mode: int
    owner: Owner | None = None


# -- locating a path inside the roots -----------------------------------------------------------


@dataclass(frozen=True)
class _Location:
    """A target split into the real root it lies in, the directories below it and its name."""

    path: str
    root: str
    dirs: tuple[str, ...]
    name: str


def _locate(path: StrPath, roots: Sequence[StrPath]) -> _Location:
    """Find the innermost root holding ``path`` (``..`` resolved); raise if there is none."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        raise StoreError(f"{text} is not an absolute path")
    normal = os.path.normpath(text)
    best: tuple[str, str] | None = None
    for root in roots:
        lexical = os.path.normpath(os.path.abspath(os.fspath(root)))
        real = os.path.realpath(lexical)
        for base in {lexical, real}:
            prefix = base.rstrip(os.sep) + os.sep
            if normal.startswith(prefix) and (best is None or len(base) > len(best[1])):
                best = (real, base)
    if best is None:
        shown = ", ".join(os.fspath(root) for root in roots) or "none configured"
        raise StoreError(f"{normal} is outside the allowed roots ({shown})")
    real_root, base = best
    parts = normal[len(base.rstrip(os.sep)) + 1 :].split(os.sep)
    return _Location(normal, real_root, tuple(parts[:-1]), parts[-1])


@contextlib.contextmanager
def _parent_directory(location: _Location) -> Iterator[int]:
    """Open the target's directory from its root, refusing any symlink on the way."""
    fd = os.open(location.root, _DIR_FLAGS)
    try:
        current = location.root
        for part in location.dirs:
            current = os.path.join(current, part)
            child = _descend(fd, part, current)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _descend(fd: int, part: str, shown: str) -> int:
    """Open directory ``part`` under ``fd`` without following a symlink."""
    try:
        info = os.stat(part, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        raise StoreError(f"directory {shown} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        raise StoreError(f"{shown} is a symlink; refusing to go through it")
    if not stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{shown} is not a directory")
    return os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)


def _existing(dir_fd: int, name: str, shown: str) -> os.stat_result | None:
    """The target's status when it is a regular file, ``None`` when absent; refuse anything else."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise StoreError(f"{shown} is a symlink; refusing to replace it")
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{shown} exists and is not a regular file")
    return info


# -- one atomic write ---------------------------------------------------------------------------


def write_atomic(
    path: StrPath,
    data: bytes,
    *,
    mode: int,
    owner: Owner | None = None,
    roots: Sequence[StrPath],
) -> None:
    """Replace ``path`` with ``data`` atomically; see the module docstring for every step.

    ``mode`` (at most ``0o777``) is the file's exact mode, set when the temporary file is
    created; ``owner`` is applied before any byte is written. Raises :class:`StoreError` when
    the path is outside ``roots``, goes through a symlink, or the write fails; on failure the
    target is unchanged and no temporary file is left behind.
    """
    _check_mode(mode)
    location = _locate(path, roots)
    try:
        with _parent_directory(location) as dir_fd:
            _existing(dir_fd, location.name, location.path)
            _replace(dir_fd, location.name, data, mode, owner)
    except OSError as exc:
        raise StoreError(f"writing {location.path} failed: {_reason(exc)}") from exc


def _check_mode(mode: int) -> None:
    if not 0 <= mode <= 0o777:
        raise ValueError(f"file mode {mode:#o} is outside 0o000..0o777")


def _replace(dir_fd: int, name: str, data: bytes, mode: int, owner: Owner | None) -> None:
    """Temporary file → owner, mode, data, fsync → rename over ``name`` → fsync directory."""
    temporary = f".{name}{TEMPORARY_MARK}{secrets.token_hex(6)}"
    fd = os.open(temporary, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
    try:
        try:
            _set_owner(fd, owner)
            os.fchmod(fd, mode)  # exact: the creation mode was only narrowed by the umask
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def _set_owner(fd: int, owner: Owner | None) -> None:
    """chown only when it changes something, so an unprivileged agent can keep its own files."""
    if owner is None:
        return
    info = os.fstat(fd)
    uid = -1 if owner.uid in (-1, info.st_uid) else owner.uid
    gid = -1 if owner.gid in (-1, info.st_gid) else owner.gid
    if (uid, gid) != (-1, -1):
        os.fchown(fd, uid, gid)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write is legal)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, "") or type(exc).__name__


def read_file(path: StrPath, *, roots: Sequence[StrPath]) -> bytes | None:
    """The content of ``path`` inside ``roots`` (no symlinks on the way), ``None`` when absent."""
    location = _locate(path, roots)
    try:
        with _parent_directory(location) as dir_fd:
            if _existing(dir_fd, location.name, location.path) is None:
                return None
            return _read(dir_fd, location.name)[0]
    except OSError as exc:
        raise StoreError(f"reading {location.path} failed: {_reason(exc)}") from exc


def _read(dir_fd: int, name: str) -> tuple[bytes, os.stat_result]:
    """The content and status of regular file ``name``, opened without following a symlink."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(), os.fstat(handle.fileno())


# -- deploy sets --------------------------------------------------------------------------------


class DeployStatus(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled-back"


@dataclass
class DeployedFile:
    """One target of a deployment: whether it existed before and whether it was replaced."""

    path: str
    existed: bool
    written: bool = False

    @property
    def previous(self) -> str:
        return self.path + PREVIOUS_SUFFIX


@dataclass
class DeployHandle:
    """A deployment that can still be undone (:func:`rollback`) or ended (:func:`commit`)."""

    roots: tuple[str, ...]
    files: tuple[DeployedFile, ...]
    status: DeployStatus = DeployStatus.OPEN

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(item.path for item in self.files)


def deploy(files: Mapping[StrPath, FileSpec], *, roots: Sequence[StrPath]) -> DeployHandle:
    """Write ``files`` (in the mapping's order) as one change; return a handle to undo it.

    Every target is checked (inside ``roots``, no symlink, a regular file if present) before
    anything is written. The current version of each existing target is then kept beside it as
    ``<path>.certplane-prev`` with the same mode and owner; a stale one beside a target that does
    not exist is removed. When writing a new file fails, the files already written are rolled
    back and :class:`StoreError` is raised naming the file that failed.
    """
    root_texts = tuple(os.fspath(root) for root in roots)
    plan = _plan(files, root_texts)
    handle = DeployHandle(root_texts, tuple(plan))
    for item in handle.files:
        _keep_previous(item, root_texts)
    for item, spec in zip(handle.files, files.values(), strict=True):
        _write_or_roll_back(handle, item, spec)
    return handle


def _plan(files: Mapping[StrPath, FileSpec], roots: tuple[str, ...]) -> list[DeployedFile]:
    """Check every target up front; refuse the same file named twice."""
    planned: list[DeployedFile] = []
    seen: set[str] = set()
    for path, spec in files.items():
        _check_mode(spec.mode)
        location = _locate(path, roots)
        if location.path in seen:
            raise StoreError(f"{location.path} is named twice in one deployment")
        seen.add(location.path)
        with _parent_directory(location) as dir_fd:
            existed = _existing(dir_fd, location.name, location.path) is not None
            _existing(dir_fd, location.name + PREVIOUS_SUFFIX, location.path + PREVIOUS_SUFFIX)
        planned.append(DeployedFile(location.path, existed))
    return planned


def _keep_previous(item: DeployedFile, roots: tuple[str, ...]) -> None:
    """Copy the current target to ``<path>.certplane-prev`` (same bytes, mode and owner)."""
    location = _locate(item.previous, roots)
    try:
        with _parent_directory(location) as dir_fd:
            if not item.existed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(location.name, dir_fd=dir_fd)
                return
            data, info = _read(dir_fd, location.name.removesuffix(PREVIOUS_SUFFIX))
            mode = stat.S_IMODE(info.st_mode) & 0o777
            _replace(dir_fd, location.name, data, mode, Owner(info.st_uid, info.st_gid))
    except OSError as exc:
        raise StoreError(f"keeping the previous {item.path} failed: {_reason(exc)}") from exc


def _write_or_roll_back(handle: DeployHandle, item: DeployedFile, spec: FileSpec) -> None:
    try:
        write_atomic(item.path, spec.data, mode=spec.mode, owner=spec.owner, roots=handle.roots)
    except (StoreError, OSError) as exc:
        item.written = True  # it may have been replaced before the failure surfaced
        try:
            rollback(handle)
        except StoreError as incomplete:
            raise StoreError(f"deploying {item.path} failed ({exc}); {incomplete}") from exc
        raise StoreError(f"deploying {item.path} failed, deployment rolled back: {exc}") from exc
    item.written = True


def rollback(handle: DeployHandle) -> None:
    """Undo an open deployment: restore every replaced file from ``<path>.certplane-prev`` (a
    rename, so atomic, with the original mode and owner) and remove the files that did not exist
    before. Raises :class:`StoreError` for a committed handle or when a file cannot be restored
    (the others are still attempted)."""
    if handle.status is DeployStatus.COMMITTED:
        raise StoreError("this deployment is committed; it can no longer be rolled back")
    failures: list[str] = []
    for item in reversed(handle.files):
        if item.written:
            try:
                _restore(item, handle.roots)
            except (StoreError, OSError) as exc:
                failures.append(f"{item.path}: {exc}")
            else:
                item.written = False
    handle.status = DeployStatus.ROLLED_BACK
    if failures:
        raise StoreError("rollback incomplete: " + "; ".join(failures))


def _restore(item: DeployedFile, roots: tuple[str, ...]) -> None:
    location = _locate(item.path, roots)
    with _parent_directory(location) as dir_fd:
        if item.existed:
            previous = location.name + PREVIOUS_SUFFIX
            if _existing(dir_fd, previous, item.previous) is None:
                raise StoreError(f"{item.previous} is missing; cannot restore {item.path}")
            os.rename(previous, location.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(location.name, dir_fd=dir_fd)
        os.fsync(dir_fd)


def commit(handle: DeployHandle) -> None:
    """End a deployment. The ``.certplane-prev`` files stay until the next deployment of the same
    targets replaces them (one more cycle), so the previous version can still be put back by
    hand. Raises :class:`StoreError` for a rolled-back handle."""
    if handle.status is DeployStatus.ROLLED_BACK:
        raise StoreError("this deployment was rolled back; there is nothing to commit")
    handle.status = DeployStatus.COMMITTED

"""File operations of the agent: atomic writes inside the roots, no symlinks, exact modes, deploy
sets that roll back exactly."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certplane.agent import store
from certplane.agent.store import (
    PREVIOUS_SUFFIX,
    DeployStatus,
    FileSpec,
    Owner,
    StoreError,
    commit,
    deploy,
    read_file,
    rollback,
    write_atomic,
)

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "root"
    (directory / "www").mkdir(parents=True)
    return directory


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask of 0 would let a careless implementation create world-readable keys."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def fail_writes_of(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Inject a failing write (ENOSPC) for exactly this content."""
    real = store._write_all

    def write_all(fd: int, content: bytes) -> None:
        if content == data:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, content)

    monkeypatch.setattr(store, "_write_all", write_all)


# -- write_atomic -------------------------------------------------------------------------------


def test_writes_the_bytes_with_the_exact_mode(root: Path):
    key, cert = root / "www/key.pem", root / "www/cert.pem"
    write_atomic(key, b"KEY", mode=0o600, roots=[root])
    write_atomic(cert, b"CERT", mode=0o644, roots=[root])
    assert (key.read_bytes(), mode_of(key)) == (b"KEY", 0o600)
    assert (cert.read_bytes(), mode_of(cert)) == (b"CERT", 0o644)
    assert listing(root / "www") == ["cert.pem", "key.pem"]


def test_replacing_a_file_changes_its_mode_to_the_one_asked(root: Path):
    key = root / "www/key.pem"
    key.write_bytes(b"old")
    key.chmod(0o644)
    write_atomic(key, b"new", mode=0o600, roots=[root])
    assert (key.read_bytes(), mode_of(key)) == (b"new", 0o600)


def test_a_key_is_never_readable_by_others_even_while_being_written(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    seen: list[int] = []
    real = store._write_all

    def spy(fd: int, data: bytes) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real(fd, data)

    monkeypatch.setattr(store, "_write_all", spy)
    write_atomic(root / "www/key.pem", b"KEY", mode=0o600, roots=[root])
    assert seen == [0o600]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    target = root / "www/cert.pem"
    target.write_bytes(b"old")
    fail_writes_of(monkeypatch, b"new")
    with pytest.raises(StoreError, match=r"writing .*cert.pem failed: No space left on device"):
        write_atomic(target, b"new", mode=0o644, roots=[root])
    assert target.read_bytes() == b"old"
    assert listing(root / "www") == ["cert.pem"]


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_a_read_only_directory_leaves_no_temporary_file(root: Path):
    directory = root / "www"
    directory.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="Permission denied"):
            write_atomic(directory / "cert.pem", b"new", mode=0o644, roots=[root])
        assert listing(directory) == []
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize(
    "path",
    [
        "{tmp}/elsewhere/cert.pem",
        "{root}/../elsewhere/cert.pem",
        "{root}/www/../../elsewhere/cert.pem",
        "{root}",
        "{root}x/cert.pem",
    ],
)
def test_a_path_outside_the_roots_is_refused(root: Path, tmp_path: Path, path: str):
    (tmp_path / "elsewhere").mkdir()
    target = path.format(tmp=tmp_path, root=root)
    with pytest.raises(StoreError, match="is outside the allowed roots"):
        write_atomic(target, b"x", mode=0o644, roots=[root])
    assert listing(tmp_path / "elsewhere") == []


def test_a_relative_path_is_refused(root: Path):
    with pytest.raises(StoreError, match="is not an absolute path"):
        write_atomic("www/cert.pem", b"x", mode=0o644, roots=[root])


def test_dot_dot_that_stays_inside_the_root_is_resolved(root: Path):
    write_atomic(f"{root}/www/../www/cert.pem", b"x", mode=0o644, roots=[root])
    assert (root / "www/cert.pem").read_bytes() == b"x"


def test_a_symlinked_target_is_refused_and_its_target_untouched(root: Path, tmp_path: Path):
    victim = tmp_path / "shadow"
    victim.write_bytes(b"precious")
    (root / "www/cert.pem").symlink_to(victim)
    with pytest.raises(StoreError, match=r"cert\.pem is a symlink; refusing to replace it"):
        write_atomic(root / "www/cert.pem", b"x", mode=0o644, roots=[root])
    assert victim.read_bytes() == b"precious"
    assert (root / "www/cert.pem").is_symlink()


def test_a_symlinked_directory_inside_the_root_is_refused(root: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match=r"root/link is a symlink; refusing to go through it"):
        write_atomic(root / "link/cert.pem", b"x", mode=0o644, roots=[root])
    assert listing(outside) == []


def test_a_symlink_to_a_directory_inside_the_root_is_refused_too(root: Path):
    (root / "alias").symlink_to(root / "www", target_is_directory=True)
    with pytest.raises(StoreError, match="is a symlink"):
        write_atomic(root / "alias/cert.pem", b"x", mode=0o644, roots=[root])


def test_the_root_itself_may_be_a_symlink(tmp_path: Path, root: Path):
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    write_atomic(alias / "www/cert.pem", b"x", mode=0o644, roots=[alias])
    write_atomic(root / "www/key.pem", b"k", mode=0o600, roots=[alias])  # the real path too
    assert (root / "www/cert.pem").read_bytes() == b"x"
    assert (root / "www/key.pem").read_bytes() == b"k"


def test_a_missing_directory_is_an_error(root: Path):
    with pytest.raises(StoreError, match=r"directory .*root/nope does not exist"):
        write_atomic(root / "nope/cert.pem", b"x", mode=0o644, roots=[root])


def test_a_directory_as_target_is_refused(root: Path):
    with pytest.raises(StoreError, match="exists and is not a regular file"):
        write_atomic(root / "www", b"x", mode=0o644, roots=[root])


def test_a_mode_beyond_permission_bits_is_a_programming_error(root: Path):
    with pytest.raises(ValueError, match=r"outside 0o000\.\.0o777"):
        write_atomic(root / "www/x", b"x", mode=0o4755, roots=[root])


@pytest.mark.skipif(not IS_ROOT, reason="chown to another user needs root")
def test_chown_when_asked(root: Path):
    key = root / "www/key.pem"
    write_atomic(key, b"KEY", mode=0o600, owner=Owner(4321, 4322), roots=[root])
    info = os.stat(key)
    assert (info.st_uid, info.st_gid, mode_of(key)) == (4321, 4322, 0o600)


def test_owner_equal_to_the_current_one_needs_no_privilege(root: Path):
    key = root / "www/key.pem"
    write_atomic(key, b"KEY", mode=0o600, owner=Owner(os.geteuid(), -1), roots=[root])
    assert os.stat(key).st_uid == os.geteuid()


def test_read_file_refuses_symlinks_and_answers_none_when_absent(root: Path, tmp_path: Path):
    assert read_file(root / "www/none", roots=[root]) is None
    (root / "www/link").symlink_to(tmp_path / "x")
    with pytest.raises(StoreError, match="symlink"):
        read_file(root / "www/link", roots=[root])


# -- deploy sets --------------------------------------------------------------------------------


@pytest.fixture
def deployed_before(root: Path) -> dict[Path, tuple[bytes, int]]:
    """A certificate and key in place before the deployment under test."""
    before = {
        root / "www/cert.pem": (b"old cert", 0o644),
        root / "www/key.pem": (b"old key", 0o600),
    }
    for path, (data, mode) in before.items():
        path.write_bytes(data)
        path.chmod(mode)
    return before


def new_files(root: Path) -> dict[Path, FileSpec]:
    return {
        root / "www/key.pem": FileSpec(b"new key", 0o600),
        root / "www/cert.pem": FileSpec(b"new cert", 0o640),
        root / "www/chain.pem": FileSpec(b"new chain", 0o644),  # did not exist
    }


def snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int] | None]:
    return {p: (p.read_bytes(), mode_of(p)) if p.exists() else None for p in paths}


def test_deploy_writes_and_keeps_the_previous_versions(root: Path, deployed_before):
    handle = deploy(new_files(root), roots=[root])
    assert snapshot(list(new_files(root))) == {
        root / "www/key.pem": (b"new key", 0o600),
        root / "www/cert.pem": (b"new cert", 0o640),
        root / "www/chain.pem": (b"new chain", 0o644),
    }
    previous = root / f"www/key.pem{PREVIOUS_SUFFIX}", root / f"www/cert.pem{PREVIOUS_SUFFIX}"
    assert snapshot(list(previous)) == {
        previous[0]: (b"old key", 0o600),
        previous[1]: (b"old cert", 0o644),
    }
    assert not (root / f"www/chain.pem{PREVIOUS_SUFFIX}").exists()
    assert handle.status is DeployStatus.OPEN


def test_rollback_restores_bytes_and_modes_exactly(root: Path, deployed_before):
    handle = deploy(new_files(root), roots=[root])
    rollback(handle)
    assert snapshot(list(new_files(root))) == {
        root / "www/key.pem": (b"old key", 0o600),
        root / "www/cert.pem": (b"old cert", 0o644),
        root / "www/chain.pem": None,  # removed: it did not exist before
    }
    assert listing(root / "www") == ["cert.pem", "key.pem"]
    assert handle.status is DeployStatus.ROLLED_BACK


@pytest.mark.skipif(not IS_ROOT, reason="files of another user need root")
def test_rollback_restores_the_owner(root: Path, deployed_before):
    key = root / "www/key.pem"
    os.chown(key, 4321, 4322)
    rollback(deploy({key: FileSpec(b"new key", 0o600)}, roots=[root]))
    info = os.stat(key)
    assert (info.st_uid, info.st_gid, key.read_bytes()) == (4321, 4322, b"old key")


def test_commit_keeps_the_previous_versions_for_one_more_cycle(root: Path, deployed_before):
    key = root / "www/key.pem"
    first = deploy({key: FileSpec(b"key 2", 0o600)}, roots=[root])
    commit(first)
    assert (root / f"www/key.pem{PREVIOUS_SUFFIX}").read_bytes() == b"old key"
    with pytest.raises(StoreError, match="committed"):
        rollback(first)
    second = deploy({key: FileSpec(b"key 3", 0o600)}, roots=[root])
    assert (root / f"www/key.pem{PREVIOUS_SUFFIX}").read_bytes() == b"key 2"
    rollback(second)
    assert key.read_bytes() == b"key 2"


def test_a_stale_previous_version_of_a_new_file_is_removed(root: Path):
    stale = root / f"www/chain.pem{PREVIOUS_SUFFIX}"
    stale.write_bytes(b"from long ago")
    handle = deploy({root / "www/chain.pem": FileSpec(b"chain", 0o644)}, roots=[root])
    assert not stale.exists()
    rollback(handle)
    assert listing(root / "www") == []


def test_a_failure_part_way_rolls_back_what_was_written(
    root: Path, deployed_before, monkeypatch: pytest.MonkeyPatch
):
    files = new_files(root)
    before = snapshot(list(files))
    fail_writes_of(monkeypatch, b"new chain")  # the third and last file
    with pytest.raises(StoreError, match=r"deploying .*chain.pem failed, deployment rolled back"):
        deploy(files, roots=[root])
    assert snapshot(list(files)) == before
    assert listing(root / "www") == ["cert.pem", "key.pem"]  # no temporary or previous file


def test_a_refused_target_stops_the_deployment_before_anything_is_written(
    root: Path, tmp_path: Path, deployed_before
):
    files = new_files(root) | {tmp_path / "outside.pem": FileSpec(b"x", 0o644)}
    before = snapshot(list(new_files(root)))
    with pytest.raises(StoreError, match="outside the allowed roots"):
        deploy(files, roots=[root])
    assert snapshot(list(new_files(root))) == before
    assert listing(root / "www") == ["cert.pem", "key.pem"]


def test_a_symlinked_previous_file_is_refused_up_front(root: Path, tmp_path: Path, deployed_before):
    (root / f"www/key.pem{PREVIOUS_SUFFIX}").symlink_to(tmp_path / "trap")
    with pytest.raises(StoreError, match="symlink"):
        deploy(new_files(root), roots=[root])
    assert not (tmp_path / "trap").exists()
    assert (root / "www/key.pem").read_bytes() == b"old key"


def test_the_same_file_twice_is_refused(root: Path):
    files = {
        root / "www/cert.pem": FileSpec(b"a", 0o644),
        f"{root}/www/./cert.pem": FileSpec(b"b", 0o644),
    }
    with pytest.raises(StoreError, match="named twice"):
        deploy(files, roots=[root])


def test_file_contents_never_appear_in_errors_or_reprs(root: Path, monkeypatch):
    secret = b"-----BEGIN PRIVATE KEY----- very secret"
    assert "secret" not in repr(FileSpec(secret, 0o600))
    fail_writes_of(monkeypatch, secret)
    with pytest.raises(StoreError) as info:
        deploy({root / "www/key.pem": FileSpec(secret, 0o600)}, roots=[root])
    assert "secret" not in str(info.value)

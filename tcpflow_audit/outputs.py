"""Output files and output sets: what `-o FILE` and `--output-dir DIR` put on disk, and when.

A reader of an output sees the previous version or this run's, whole, never a mix, whatever
happens to the run (an error, Ctrl-C, SIGTERM, SIGKILL); what is renamed into place was flushed to
disk first, and the rename itself after it, so that a crash of the machine keeps to that too:

- `OutputFile` (`-o FILE`): the report is written to `.FILE.XXXXXXXX.partial` beside FILE, flushed
  to disk (fsync) and renamed over FILE; the directory is flushed after the rename.
- `OutputSet` (`--output-dir DIR`): flows.csv, anomalies.csv and summary.json belong together, so
  they change together, with one rename(2). DIR is a symbolic link to the current set directory,
  `.DIR.sets/<set>` beside DIR (DIR/flows.csv etc. stay the paths to read). A run writes its files
  into a fresh set directory there, flushes them and that directory, makes a link to it (in
  `.DIR.sets`, with the text DIR will hold) and renames that link over DIR; then the directory
  holding DIR is flushed and the previous set directory removed. A DIR that is a plain directory
  (made by the user, or by a version before output sets) holding nothing but the three files is
  swapped for the link with one renameat2(RENAME_EXCHANGE) (Linux 3.15 and later, on file systems
  that support it), so it too changes in one step; one holding other files is refused (they would
  go with it), as is a symbolic link DIR that is not one of ours.

One writer per output: a run holds an exclusive flock(2) on `.NAME.lock` beside the output (the
file stays; it holds the pid of the last run that locked it) from before it reads its first packet
until its outcome is decided and printed, so two runs never interleave their steps; a second run
waits for the first, up to a limit (`OutputBusy` when it runs out). With the lock held, leftovers
of earlier runs that were killed (a `.FILE.XXXXXXXX.partial` file; a set directory that never
became current or that was not yet removed) are removed, recognised by their names alone.

Whether an interrupted run's output replaced the previous one (`replaced`) is read from the file
system, not from a flag set after the rename: a signal that lands right after the rename, before
the next Python statement, must not make the run's stderr line say the opposite of what happened.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from .names import shown

SET_FILES = (
    "flows.csv",
    "anomalies.csv",
    "summary.json",
    "sockets.csv",
    "timeline.csv",
    "report.html",
    "flows.parquet",
    "anomalies.parquet",
    "sockets.parquet",
    "timeline.parquet",
)  # (what a set may hold)

# mkstemp and mkdtemp name a file by 8 characters of this alphabet: the names of our temporaries
_RANDOM = r"[a-z0-9_]{8}"
# a set directory: when it was made (UTC) and mkdtemp's characters; `.link` for its link being made
_SET_NAME = re.compile(r"\d{8}T\d{6}Z-" + _RANDOM)
_SET_ENTRY = re.compile(r"(" + _SET_NAME.pattern + r")(\.link)?")


class OutputBusy(Exception):
    """Another run holds the output's lock, and the time allowed to wait for it ran out."""

    def __init__(self, path: str, holder: str, waited: float) -> None:
        super().__init__(f"{shown(path)} is being written by another run ({holder})")
        self.path = path
        self.holder = holder
        self.waited = waited


class OutputRefused(Exception):
    """The path cannot be an output set as it stands (the message says why and what to do)."""


# ---------------------------------------------------------------------- locking
class OutputLock:
    """An exclusive flock(2) on a lock file; the lock goes with the process, whatever ends it."""

    def __init__(self, path: str, output: str) -> None:
        self.path = path
        self.output = output  # what it guards, for messages
        self.fd: int | None = None

    def acquire(self, timeout: float, waiting: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting up to `timeout` seconds (0: try once); `waiting(holder)` is called once
        if it has to wait. OutputBusy when the time runs out (the lock file is kept: removing it
        would let two runs lock two different files of one name)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            writable = True
        except PermissionError:  # another user's lock file (0644 under the usual umask): flock needs no write
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            writable = False
        try:
            deadline = time.monotonic() + timeout
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OutputBusy(self.output, self.holder(fd), timeout)
                if not waited and waiting is not None:
                    waiting(self.holder(fd))
                waited = True
                time.sleep(min(0.05, left))  # (a signal handler that raises ends the wait at once)
            if writable:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # (closing the last descriptor releases a flock)
            self.fd = None

    @staticmethod
    def holder(fd: int) -> str:
        """Who holds the lock, as the holder wrote it ("pid 1234"), when it did."""
        try:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        return text if text.startswith("pid ") else "pid unknown"


# ---------------------------------------------------------------------- the two kinds of output
class _Output:
    """What a report file and an output set share: the path, the lock beside it, and cleaning up."""

    def __init__(self, path: str) -> None:
        self.path = path  # as the user gave it, for messages
        full = os.path.abspath(path)  # (abspath drops a trailing slash)
        self.parent, self.name = os.path.split(full)
        self.full = full
        self.lock = OutputLock(os.path.join(self.parent, f".{self.name}.lock"), path)
        self.kept: list[str] = []  # leftovers not removed (files we did not write in them, or an error), why

    @contextmanager
    def locked(self, timeout: float, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the output's lock for the block; with it held, check the output and remove leftovers."""
        self.make_parent()
        self.lock.acquire(timeout, waiting)
        try:
            self.prepare()
            yield
        finally:
            self.lock.release()

    def make_parent(self) -> None:
        if not os.path.isdir(self.parent):
            raise FileNotFoundError(errno.ENOENT, "no such directory", self.parent)

    def prepare(self) -> None:
        raise NotImplementedError

    @property
    def replaced(self) -> bool:
        """Whether this run's output is in place (read from the file system)."""
        raise NotImplementedError


class OutputFile(_Output):
    """`-o FILE`: a temporary file beside FILE, renamed over it once complete and on disk."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._identity: tuple[int, int] | None = None
        self._partial = re.compile(re.escape(f".{self.name}.") + _RANDOM + re.escape(".partial"))

    def prepare(self) -> None:
        """Remove the `.FILE.XXXXXXXX.partial` files of killed runs (only with the lock held)."""
        for entry in os.listdir(self.parent):
            if self._partial.fullmatch(entry):
                _remove_file(os.path.join(self.parent, entry))

    @contextmanager
    def writing(self, *, bom: bool = False, binary: bool = False) -> Iterator[Any]:
        """A text stream for the report (a binary one with `binary`); FILE is replaced when the block ends
        without an exception."""
        fd, partial = tempfile.mkstemp(dir=self.parent, prefix=f".{self.name}.", suffix=".partial")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the report gets the usual permissions
            info = os.fstat(fd)
            self._identity = (info.st_dev, info.st_ino)
            stream = (
                os.fdopen(fd, "wb")
                if binary
                else os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")
            )
        except BaseException:
            os.close(fd)
            _remove_file(partial)
            raise
        try:
            with stream:
                yield stream
                stream.flush()
                os.fsync(stream.fileno())  # the data on disk before the name points at it
            os.replace(partial, self.full)
            _sync_directory(self.parent)
        except BaseException:
            if not self.replaced:
                _remove_file(partial)
            raise

    @property
    def replaced(self) -> bool:
        if self._identity is None:
            return False
        try:
            info = os.lstat(self.full)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self._identity


class OutputSet(_Output):
    """`--output-dir DIR`: flows.csv, anomalies.csv and summary.json, replaced together by one rename.

    Use: `with output_set.locked(timeout): with output_set.writing(): output_set.open(name)...`;
    the new set replaces the current one when the `writing` block ends without an exception.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.sets = os.path.join(self.parent, f".{self.name}.sets")
        self.current: str | None = None  # the name of the current set directory, when DIR is our link
        self.plain = False  # DIR is a plain directory (swapped for the link at the switch)
        self._new: str | None = None  # the new set directory's name
        self._streams: list[IO[Any]] = []

    def make_parent(self) -> None:
        os.makedirs(self.parent, exist_ok=True)

    def link_text(self, set_name: str) -> str:
        """What the link DIR holds for a set: relative, so moving DIR's directory moves it whole."""
        return os.path.join(f".{self.name}.sets", set_name)

    def prepare(self) -> None:
        """See what DIR is (refusing what cannot be replaced safely) and remove the leftovers of killed runs."""
        self.current, self.plain = None, False
        try:
            info = os.lstat(self.full)
        except FileNotFoundError:
            info = None
        if info is None:
            pass
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(self.full)
            head, set_name = os.path.split(target)
            if head != f".{self.name}.sets" or not _SET_NAME.fullmatch(set_name):
                raise OutputRefused(
                    f"{shown(self.path)} is a symbolic link (to {shown(target)}) that tcpflow-audit "
                    f"did not make: give the directory it leads to instead"
                )
            self.current = set_name
        elif stat.S_ISDIR(info.st_mode):
            others = sorted(entry for entry in os.listdir(self.full) if not self._ours(entry))
            if others:
                listed = ", ".join(shown(other) for other in others[:3]) + (", ..." if len(others) > 3 else "")
                raise OutputRefused(
                    f"{shown(self.path)} is a directory holding files tcpflow-audit does not write "
                    f"({listed}), which would be removed with it: give a new or empty directory"
                )
            if os.path.ismount(self.full):
                raise OutputRefused(f"{shown(self.path)} is a mount point: give a directory inside it")
            self.plain = True
        else:
            raise OutputRefused(f"{shown(self.path)} is not a directory")
        if os.path.isdir(self.sets):
            for entry in os.listdir(self.sets):
                if entry != self.current and _SET_ENTRY.fullmatch(entry):
                    self._remove_set(os.path.join(self.sets, entry))
        else:
            os.mkdir(self.sets)
        if self.plain:
            self._check_exchange()

    @staticmethod
    def _ours(entry: str) -> bool:
        """A set file, or the temporary of one written beside it (by a version before output sets)."""
        if entry in SET_FILES:
            return True
        return any(re.fullmatch(re.escape(f".{name}.") + _RANDOM + re.escape(".partial"), entry) for name in SET_FILES)

    def _make_set_directory(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = tempfile.mkdtemp(prefix=f"{stamp}-", dir=self.sets)
        os.chmod(path, 0o777 & ~_umask())  # mkdtemp makes 0700; readers get the usual permissions
        return path

    def _check_exchange(self) -> None:
        """Before reading anything: can this file system swap a directory and a link in one step?"""
        probe = self._make_set_directory()
        link = probe + ".link"
        try:
            os.symlink(os.path.basename(probe), link)
            _exchange(probe, link)
        except OSError as error:
            raise OutputRefused(
                f"{shown(self.path)} is a plain directory and this system cannot swap it for the link "
                f"to a set in one step (renameat2 RENAME_EXCHANGE: {error.strerror}); its files are "
                f"an earlier run's: remove the directory, and the next run makes the link"
            ) from None
        finally:
            self._remove_set(probe)
            self._remove_set(link)

    @contextmanager
    def writing(self) -> Iterator[OutputSet]:
        """A fresh set directory for `open`; it becomes DIR's set when the block ends without an exception."""
        new = self._make_set_directory()
        self._new = os.path.basename(new)
        self._streams = []
        try:
            yield self
            self._switch(new)
        except BaseException:
            for stream in self._streams:
                try:
                    stream.close()
                except OSError:
                    pass
            if not self.replaced:
                self._remove_set(new)
                self._remove_set(new + ".link")
            raise

    def open(self, name: str, *, bom: bool = False) -> IO[str]:
        """A text stream for one of SET_FILES in the new set."""
        assert self._new is not None and name in SET_FILES, name
        stream = open(
            os.path.join(self.sets, self._new, name), "w", encoding="utf-8-sig" if bom else "utf-8", newline=""
        )
        self._streams.append(stream)
        return stream

    def open_binary(self, name: str) -> IO[bytes]:
        """A binary stream for one of SET_FILES in the new set (Parquet)."""
        assert self._new is not None and name in SET_FILES, name
        stream = open(os.path.join(self.sets, self._new, name), "wb")
        self._streams.append(stream)
        return stream

    def _switch(self, new: str) -> None:
        for stream in self._streams:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        _sync_directory(new)  # the files' names in the set directory
        _sync_directory(self.sets)  # the set directory's name
        link = new + ".link"
        os.symlink(self.link_text(os.path.basename(new)), link)
        if self.plain:
            _exchange(link, self.full)  # the one step: DIR becomes the link, the plain directory goes to `link`
            previous: str | None = link
        else:
            os.rename(link, self.full)  # the one step: a rename over the previous link, or a new name
            previous = os.path.join(self.sets, self.current) if self.current else None
        _sync_directory(self.parent)
        if previous is not None:
            self._remove_set(previous)

    def _remove_set(self, path: str) -> None:
        """Remove a set directory (or a link being made) of ours, the files we write in it, and nothing else.

        What cannot be removed is noted in `kept` (for a warning): the set it belonged to is no
        longer the current one, so the run's outcome does not depend on it."""
        try:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                _remove_file(path)
                return
            for entry in os.listdir(path):
                if self._ours(entry):
                    _remove_file(os.path.join(path, entry))
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            why = (
                "it holds files tcpflow-audit did not write"
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST)
                else error.strerror
            )
            self.kept.append(f"{shown(path)} ({why})")

    @property
    def replaced(self) -> bool:
        if self._new is None:
            return False
        try:
            return os.readlink(self.full) == self.link_text(self._new)
        except OSError:
            return False


@contextmanager
def standard_output() -> Iterator[IO[str]]:
    """The report stream when there is no output file: standard output, flushed at the end."""
    yield sys.stdout
    sys.stdout.flush()


# ---------------------------------------------------------------------- system calls
def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_directory(path: str) -> None:
    """fsync(2) a directory, so that the names in it survive a crash (where the file system allows it)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # a file system that cannot sync directories
            raise
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: str, second: str) -> None:
    """Swap two names in one step: renameat2(2) with RENAME_EXCHANGE (Linux), through the C library."""
    import ctypes

    libc: Any = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # (not Linux, or a C library older than glibc 2.28)
        raise OSError(errno.ENOSYS, "renameat2 is not available", second)
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), second)

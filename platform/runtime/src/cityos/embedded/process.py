"""Lifetime of one server process spawned by the embedded services.

A child is either *attached* (dies with us: killed by ``stop()``, at interpreter exit, and
through ``PR_SET_PDEATHSIG`` when we are killed outright) or *detached* (its own session,
tracked by a pid file so a later process such as ``devservices stop`` can end it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

_PR_SET_PDEATHSIG = 1


class ContextManagedService:
    """``with service:`` starts it and stops it, whatever happens inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedServiceError(RuntimeError):
    """A service binary is missing, or a service failed to start or stop; the message says why."""


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def require_executable(candidates: Sequence[Path], *, what: str, packages: str) -> Path:
    """Return the first executable among ``candidates``, or explain what to install."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    tried = ", ".join(str(candidate) for candidate in candidates) or "(no candidates)"
    raise EmbeddedServiceError(
        f"{what} not found (looked for {tried}). Install the Debian packages {packages}, "
        "for example with scripts/install-system-deps."
    )


def _pdeathsig_hook() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that kills the child when this (main) thread dies, on Linux.

    The kernel sends the signal when the *thread* that forked exits, so it is only safe from
    the main thread; a child started from a worker thread relies on stop() and atexit alone.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_pdeathsig


def _pid_is_alive(pid: int, executable_name: str) -> bool:
    """Tell whether ``pid`` is a live (non-zombie) process running ``executable_name``."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and Path(argv0).name == executable_name


class ChildProcess:
    """One server process: start it attached or detached, stop it exactly once."""

    def __init__(self, argv: Sequence[str], *, log_path: Path, pid_file: Path) -> None:
        self._argv = list(argv)
        self._log_path = log_path
        self._pid_file = pid_file
        self._popen: subprocess.Popen[bytes] | None = None
        self._executable_name = Path(self._argv[0]).name

    @property
    def log_path(self) -> Path:
        return self._log_path

    def recorded_pid(self) -> int | None:
        """Return the pid from the pid file when that process is still this server."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_is_alive(pid, self._executable_name) else None

    def is_running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self.recorded_pid() is not None

    def start(self, *, detach: bool = False) -> None:
        """Spawn the process, logging stdout and stderr to ``log_path``."""
        if self.is_running():
            raise EmbeddedServiceError(f"{self._executable_name} is already running")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
                preexec_fn=None if detach else _pdeathsig_hook(),
            )
        self._pid_file.write_text(f"{self._popen.pid}\n")
        if not detach:
            atexit.register(self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        atexit.unregister(self.stop)
        if self._popen is not None:
            if self._popen.poll() is None:
                self._popen.terminate()
                try:
                    self._popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._popen.kill()
                    self._popen.wait(timeout)
            self._popen = None
        else:
            pid = self.recorded_pid()
            if pid is not None:
                self._signal_and_wait(pid, timeout)
        with contextlib.suppress(FileNotFoundError):
            self._pid_file.unlink()

    def _signal_and_wait(self, pid: int, timeout: float) -> None:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not _pid_is_alive(pid, self._executable_name):
                    return
                time.sleep(0.05)
        raise EmbeddedServiceError(f"{self._executable_name} (pid {pid}) survived SIGKILL")

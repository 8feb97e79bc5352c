"""A Mosquitto MQTT broker on loopback with its config, persistence and log in one directory."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from cityos.embedded.ports import LOOPBACK, free_port, port_is_free, wait_for_port
from cityos.embedded.process import (
    ChildProcess,
    ContextManagedService,
    EmbeddedServiceError,
    log_tail,
    require_executable,
)

_LISTENER_LINE = re.compile(r"^listener\s+(\d+)\b", re.MULTILINE)


def find_mosquitto() -> Path:
    """Return the ``mosquitto`` broker binary (Debian installs it in /usr/sbin)."""
    on_path = shutil.which("mosquitto")
    candidates = [Path(on_path)] if on_path else []
    candidates.append(Path("/usr/sbin/mosquitto"))
    return require_executable(candidates, what="Mosquitto broker", packages="mosquitto")


class EmbeddedMosquitto(ContextManagedService):
    """One Mosquitto broker whose files all live in ``state_dir``.

    Without an explicit ``port`` it reuses the port of the previous run in this directory
    when that port is still free, else it takes a free one.
    """

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.state_dir = state_dir.absolute()
        self._requested_port = port
        self._port: int | None = None
        self._process: ChildProcess | None = None

    @property
    def config_path(self) -> Path:
        return self.state_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "mosquitto.pid"

    @property
    def port(self) -> int:
        if self._port is None and self.is_running():
            self._port = self._configured_port()
        if self._port is None:
            raise EmbeddedServiceError(f"Mosquitto in {self.state_dir} is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def is_running(self) -> bool:
        return self._child().is_running()

    def start(self, *, detach: bool = False, timeout: float = 15.0) -> None:
        """Start the broker and return once its port accepts TCP connections.

        A broker already running from this directory (pid file) is adopted as it is.
        """
        if self.is_running():
            self._port = self._configured_port()
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        self._write_config(port)
        child = self._child()
        child.start(detach=detach)
        try:
            wait_for_port(LOOPBACK, port, timeout, alive=child.is_running)
        except OSError as exc:
            child.stop()
            raise EmbeddedServiceError(
                f"Mosquitto did not start on {LOOPBACK}:{port}: {exc}\n"
                f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
            ) from exc
        self._port = port

    def stop(self) -> None:
        """Stop the broker (it saves its persistence file on SIGTERM); idempotent."""
        try:
            child = self._child()
        except EmbeddedServiceError:
            child = None  # without a Mosquitto binary, none of ours can be running
        if child is not None:
            child.stop()
        self._port = None

    def _child(self) -> ChildProcess:
        if self._process is None:
            self._process = ChildProcess(
                [str(find_mosquitto()), "-c", str(self.config_path)],
                log_path=self.log_path,
                pid_file=self.pid_file,
            )
        return self._process

    def _configured_port(self) -> int | None:
        try:
            match = _LISTENER_LINE.search(self.config_path.read_text(encoding="utf-8"))
        except OSError:
            return None
        return int(match.group(1)) if match else None

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            if not port_is_free(self._requested_port):
                raise EmbeddedServiceError(
                    f"port {self._requested_port} requested for Mosquitto is already in use"
                )
            return self._requested_port
        stored = self._configured_port()
        return stored if stored is not None and port_is_free(stored) else free_port()

    def _write_config(self, port: int) -> None:
        # Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot write
        # a state directory that root created.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(
            f"""\
# Written by cityos.embedded.mosquitto on every start; edits here are overwritten.
{run_as}listener {port} {LOOPBACK}
allow_anonymous true
persistence true
persistence_location {self.state_dir}/
autosave_interval 30
# The defaults (1000 queued, 20 in flight) silently drop bursts from fast publishers.
max_queued_messages 100000
max_inflight_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %Y-%m-%dT%H:%M:%S
""",
            encoding="utf-8",
        )

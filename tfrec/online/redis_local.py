"""A throwaway redis-server on a free loopback port, for tests, benchmarks and trying the Redis user-state store
locally (production points `user_state.redis_url` at a managed Redis; tfrec never starts one there).

The server keeps nothing on disk (`--save ''`, no append-only file) and is stopped when the context exits.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from typing import Optional

__all__ = ["LocalRedisServer", "RedisServerUnavailable", "free_port"]


class RedisServerUnavailable(RuntimeError):
    """redis-server is not installed or did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedisServer:
    """`with LocalRedisServer() as url:` runs redis-server on 127.0.0.1 and yields its redis:// URL."""

    def __init__(self, executable: str = "redis-server", port: Optional[int] = None, start_timeout: float = 20.0):
        self.executable = shutil.which(executable)
        if self.executable is None:
            raise RedisServerUnavailable(
                f"{executable!r} is not on PATH: install Debian's redis-server package (`apt-get install -y "
                "redis-server`; `make test` does this when apt is available)")
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redis

        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    output = self.process.stdout.read().decode("utf-8", "replace") if self.process.stdout else ""
                    raise RedisServerUnavailable(f"redis-server exited with {self.process.returncode}: {output[-500:]}")
                try:
                    if client.ping():
                        return self.url
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisServerUnavailable(f"redis-server did not answer on port {self.port} within {self.start_timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

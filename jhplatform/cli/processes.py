"""Child processes the demo starts, and the guarantee that none outlives it.

Every process starts in its own session (process group), with its output in a log file. On stop,
each group gets SIGTERM, then SIGKILL after a grace period, in the reverse order of starting, and
:meth:`Processes.stop` returns only when every group is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields: state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    ports: list[int] = field(default_factory=list)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """The demo's child processes, each in its own process group."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], *, env: dict | None = None, cwd: Path | None = None, ports=()) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=str(cwd) if cwd else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log, list(ports))
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        """Children that have exited on their own."""
        return [c for c in self.children if c.proc.poll() is not None]

    async def stop(self, grace: float = 5.0) -> None:
        for child in reversed(self.children):
            await self._stop_one(child, grace)
        self.children.clear()

    async def _stop_one(self, child: Child, grace: float) -> None:
        pgid = child.proc.pid
        if _group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            child.proc.poll()
            if not _group_alive(pgid):
                break
            await asyncio.sleep(0.05)
        else:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            kill_deadline = loop.time() + grace
            while _group_alive(pgid) and loop.time() < kill_deadline:
                child.proc.poll()
                await asyncio.sleep(0.02)
        child.proc.wait()


__all__ = ["Child", "Processes", "free_port", "group_members", "port_is_free"]

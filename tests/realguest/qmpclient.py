"""A small QMP (QEMU Machine Protocol) client: stdlib socket + json only.

Used by generate.py to drive `dump-guest-memory` on a running guest.

    with QMP("/tmp/x.qmp") as q:
        q.version                  # {"qemu": {"major": 7, ...}, "package": ...}
        q.execute("stop")
        q.execute("dump-guest-memory", {"paging": False, "protocol": "file:/x", "format": "elf"})

Errors answered by QEMU raise QMPError (with .error_class and .desc).
Asynchronous events are kept in q.events.
"""

from __future__ import annotations

import json
import socket
import time


class QMPError(RuntimeError):
    def __init__(self, command: str, error_class: str, desc: str):
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QMP:
    def __init__(self, path: str, connect_timeout: float = 30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._buf = b""
        self.events: list[dict] = []
        greeting = self._recv(connect_timeout)
        if "QMP" not in greeting:
            raise RuntimeError(f"not a QMP greeting: {greeting!r}")
        self.version: dict = greeting["QMP"].get("version", {})
        self.execute("qmp_capabilities")

    # -- framing: one JSON object per line
    def _recv(self, timeout: float | None) -> dict:
        self.sock.settimeout(timeout)
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl].strip(), self._buf[nl + 1 :]
                if line:
                    return json.loads(line)
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed by QEMU")
            self._buf += chunk

    def execute(self, command: str, arguments: dict | None = None, timeout: float = 900.0):
        msg: dict = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            resp = self._recv(timeout)
            if "event" in resp:
                self.events.append(resp)
                continue
            if "error" in resp:
                err = resp["error"]
                raise QMPError(command, err.get("class", "?"), err.get("desc", "?"))
            return resp.get("return")

    def wait_event(self, name: str, timeout: float) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("event") == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no QMP event {name} within {timeout} s")
            try:
                ev = self._recv(left)
            except TimeoutError:
                raise TimeoutError(f"no QMP event {name} within {timeout} s") from None
            if ev.get("event") == name:
                return ev
            if "event" in ev:
                self.events.append(ev)

    def hmp(self, command_line: str) -> str:
        return self.execute("human-monitor-command", {"command-line": command_line})

    def quit(self) -> None:
        try:
            self.execute("quit", timeout=30.0)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

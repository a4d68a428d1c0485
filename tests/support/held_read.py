"""A read the backend cannot finish yet: MySQL's `messages` table is write-locked by the
test, so the request waits inside the backend until the test lets go. For shutdown
tests: a request in flight when SIGTERM arrives."""

from __future__ import annotations

import threading
import time

import httpx
import pymysql


class HeldRead:
    def __init__(self, url: str, holder: pymysql.Connection, timeout: float = 30) -> None:
        self.url = url
        self.holder = holder
        self.timeout = timeout
        self.result: dict[str, object] = {}
        self.reader = threading.Thread(target=self._read)

    def _read(self) -> None:
        try:
            self.result["response"] = httpx.get(self.url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            self.result["error"] = exc

    def start(self) -> None:
        """Lock the table, send the read, and check it is waiting on the lock."""
        with self.holder.cursor() as cursor:
            cursor.execute("LOCK TABLES messages WRITE")
        self.reader.start()
        time.sleep(0.5)
        assert self.reader.is_alive(), "the read did not block on the lock"

    def release(self, join_timeout: float = 20) -> None:
        with self.holder.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
        self.reader.join(timeout=join_timeout)

    def response(self) -> httpx.Response:
        response = self.result.get("response")
        assert isinstance(response, httpx.Response), self.result
        return response

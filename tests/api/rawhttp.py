"""Byte-level HTTP/1.1 for the API tests that http.client cannot express: a body that stops
half-way, a declared length that is never sent, an Expect: 100-continue handshake, a chunked
body that keeps coming after the server has answered.
"""
import socket

from tests.api.harness import Response


class RawConnection:
    """One TCP connection to the daemon; send bytes, read whole responses."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_head(self, method, path, headers):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _line_block(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
        return status, headers

    def read_interim(self):
        """Reads a 1xx line (e.g. 100 Continue) and returns its status."""
        status, _ = self._line_block()
        return status

    def read_response(self):
        """Reads one final response (skipping 1xx) with a Content-Length body."""
        while True:
            status, headers = self._line_block()
            if status >= 200:
                break
        n = 0
        for k, v in headers:
            if k.lower() == "content-length":
                n = int(v)
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, headers, body.decode("utf-8", "replace"))

    def closed_by_peer(self):
        """True once the server has closed its side (reads EOF)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except ConnectionError:
            return True
        except socket.timeout:
            return False

"""A streaming ``multipart/form-data`` parser: bounded memory whatever the body size.

Fed chunk by chunk, it returns events: ``Part`` (the headers of a new part), ``bytes``
(a piece of the current part's body) and ``End`` (after the closing delimiter). Body
bytes are found with ``bytes.find`` on the delimiter, so large files move at memcpy
speed; at most one delimiter's length is held back between chunks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 16 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class End:
    pass


END = End()
_PARAM_RE = re.compile(r';\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data; boundary=...`` content type."""
    mime, _, _ = content_type.partition(";")
    if mime.strip().lower() != "multipart/form-data":
        raise MultipartError("not multipart/form-data")
    params = parse_params(content_type[len(mime):])
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise MultipartError("missing or invalid multipart boundary")
    return boundary.encode("latin-1")


def parse_params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _PARAM_RE.finditer(text):
        value = m.group(2) if m.group(2) is not None else (m.group(3) or "").strip()
        out[m.group(1).lower()] = value.replace('\\"', '"') if m.group(2) is not None else value
    return out


class MultipartParser:
    _PREAMBLE, _AFTER_BOUNDARY, _HEADERS, _BODY, _END = range(5)

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary
        # the first delimiter may open the body without a preceding CRLF
        self.buf = bytearray(b"\r\n")
        self.tail = b""  # in a body: the last bytes that may start a delimiter
        self.state = self._PREAMBLE

    @property
    def done(self) -> bool:
        return self.state == self._END

    def feed(self, data: bytes) -> list[Part | bytes | memoryview | End]:
        events: list[Part | bytes | memoryview | End] = []
        while self.state != self._END:
            if self.state == self._BODY:
                rest = self._body(data, events)
                if rest is None:
                    return events
                data = b""
                self.buf += rest
                continue
            if data:
                self.buf += data
                data = b""
            if not self._step(events):
                return events
            if self.state == self._BODY:
                data = bytes(self.buf)
                self.buf.clear()
        return events

    def _body(self, data: bytes, events: list[Part | bytes | memoryview | End]) -> bytes | None:
        """Emit body bytes; return what follows the closing delimiter, or None when more is needed."""
        delim = self.delimiter
        keep = len(delim) - 1
        tail = self.tail
        if tail:
            if len(data) < len(delim):
                joined = tail + data
                i = joined.find(delim)
                if i >= 0:
                    if i:
                        events.append(joined[:i])
                    self.tail = b""
                    self.state = self._AFTER_BOUNDARY
                    return joined[i + len(delim):]
                cut = max(len(joined) - keep, 0)
                if cut:
                    events.append(joined[:cut])
                self.tail = joined[cut:]
                return None
            # a delimiter that starts inside the tail ends within the first len(delim)-1 bytes of data
            joint = tail + data[:keep]
            i = joint.find(delim)
            if 0 <= i < len(tail):
                if i:
                    events.append(tail[:i])
                self.tail = b""
                self.state = self._AFTER_BOUNDARY
                return data[i + len(delim) - len(tail):]
            events.append(tail)
            self.tail = b""
        i = data.find(delim)
        if i >= 0:
            if i:
                events.append(memoryview(data)[:i])
            self.state = self._AFTER_BOUNDARY
            return data[i + len(delim):]
        if len(data) > keep:
            events.append(memoryview(data)[: len(data) - keep])
            self.tail = data[len(data) - keep:]
        else:
            self.tail = data
        return None

    def _step(self, events: list[Part | bytes | memoryview | End]) -> bool:
        """Advance through delimiters and part headers held in ``buf``; False when more data is needed."""
        if self.state == self._PREAMBLE:
            i = self.buf.find(self.delimiter)
            if i < 0:
                keep = len(self.delimiter) - 1
                if len(self.buf) > keep:
                    del self.buf[: len(self.buf) - keep]
                return False
            del self.buf[: i + len(self.delimiter)]
            self.state = self._AFTER_BOUNDARY
            return True
        if self.state == self._AFTER_BOUNDARY:
            j = 0
            while j < len(self.buf) and self.buf[j] in b" \t":
                j += 1
            if len(self.buf) - j < 2:
                if len(self.buf) > 1024:
                    raise MultipartError("malformed multipart delimiter")
                return False
            marker = bytes(self.buf[j: j + 2])
            if marker == b"--":
                self.state = self._END
                self.buf.clear()
                events.append(END)
                return True
            if marker != b"\r\n":
                raise MultipartError("malformed multipart delimiter")
            del self.buf[: j + 2]
            self.state = self._HEADERS
            return True
        # headers
        if self.buf.startswith(b"\r\n"):
            block = b""
            del self.buf[:2]
        else:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    raise MultipartError("multipart part headers too large")
                return False
            block = bytes(self.buf[:i])
            del self.buf[: i + 4]
        events.append(self._part(block))
        self.state = self._BODY
        return True

    @staticmethod
    def _part(block: bytes) -> Part:
        part = Part()
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            text = block.decode("latin-1")
        for line in text.split("\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise MultipartError("malformed multipart part header")
            part.headers[name.strip().lower()] = value.strip()
        disposition = part.headers.get("content-disposition")
        if disposition is None:
            raise MultipartError("multipart part without Content-Disposition")
        params = parse_params(";" + disposition.partition(";")[2])
        part.name = params.get("name")
        part.filename = params.get("filename")
        return part

"""Names in PostgREST's grammar: identifiers (plain or "quoted"), columns with JSON paths
(``data->a->>b``) and dotted embedding paths (``a.b.col``), and the scanner the select and
filter grammars read them with."""

from __future__ import annotations

from dataclasses import dataclass, field

from appkit.local.rest.errors import RestError, parse_error


@dataclass
class Field:
    name: str
    json_path: list[tuple[str, str]] = field(default_factory=list)  # ("->" | "->>", key)

    @property
    def output_name(self) -> str:
        if self.json_path:
            return self.json_path[-1][1]
        return self.name



class Scanner:
    """A cursor over one parameter's text, reporting errors as PostgREST does."""

    def __init__(self, text: str, what: str) -> None:
        self.s = text
        self.i = 0
        self.what = what

    def eof(self) -> bool:
        return self.i >= len(self.s)

    def peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    def error(self, msg: str) -> RestError:
        return parse_error(
            f'"failed to parse {self.what} ({self.s})" (line 1, column {self.i + 1})', details=msg,
        )

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise self.error(f"expecting {token!r}")
        self.i += len(token)

    def name(self, stop: str = ",()!:.-\"") -> str:
        """An identifier: "quoted" or a run of characters without the stop characters."""
        if self.peek() == '"':
            return self.quoted()
        start = self.i
        while not self.eof():
            ch = self.s[self.i]
            if ch in stop:
                # '-' only ends a name when it starts '->'
                if ch == "-" and self.peek(2) != "->":
                    self.i += 1
                    continue
                break
            self.i += 1
        out = self.s[start:self.i].strip()
        if not out:
            raise self.error("expecting an identifier")
        return out

    def quoted(self) -> str:
        self.expect('"')
        out: list[str] = []
        while True:
            if self.eof():
                raise self.error("unterminated quoted identifier")
            ch = self.s[self.i]
            if ch == "\\" and self.i + 1 < len(self.s):
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                break
            out.append(ch)
            self.i += 1
        if not out:
            raise self.error("empty quoted identifier")
        return "".join(out)

    def field(self) -> Field:
        f = Field(self.name())
        while self.peek(2) == "->":
            op = "->>" if self.peek(3) == "->>" else "->"
            self.i += len(op)
            key = self.name()
            f.json_path.append((op, key))
        return f


def split_path(key: str) -> tuple[list[str], str]:
    """``a.b.col->x`` -> (["a", "b"], "col->x"), honouring double quotes."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and quoted and i + 1 < len(key):
            buf.append(key[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts[:-1], parts[-1]


def parse_field(text: str, what: str = "filter") -> Field:
    sc = Scanner(text, what)
    f = sc.field()
    if not sc.eof():
        raise sc.error("unexpected input after the column")
    return f

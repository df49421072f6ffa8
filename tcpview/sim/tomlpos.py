"""Line numbers of keys and array elements in a TOML document, for error messages.

``tomllib`` gives values but not where they were written, so a validation error could only
name a field path. :func:`locate` scans the (already valid) TOML text once and maps each path
-- a tuple of keys and array indexes, as in ``("steps", 3, "flags")`` -- to the 1-based line
where it starts. It understands what scenario files use: tables, arrays of tables, dotted and
quoted keys, inline tables and arrays (across lines), all four string forms and comments.
Anything it cannot follow simply has no line; it never raises.
"""

from __future__ import annotations

Path = tuple


def locate(text: str) -> dict[Path, int]:
    """Map every key / array-element path in ``text`` to the line it starts on."""
    out: dict[Path, int] = {}
    try:
        _Scanner(text, out).document()
    except (IndexError, ValueError):
        pass
    return out


class _Scanner:
    def __init__(self, text: str, out: dict[Path, int]) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.out = out
        self.aot: dict[Path, int] = {}  # array-of-tables path -> next index

    # -- low level ------------------------------------------------------------------------
    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def adv(self, n: int = 1) -> None:
        for _ in range(n):
            if self.i < len(self.s):
                if self.s[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_ws(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.adv()
            elif c == "#":
                while self.i < len(self.s) and self.s[self.i] != "\n":
                    self.i += 1
            else:
                return

    def string(self) -> str:
        q = self.peek()
        if self.s.startswith(q * 3, self.i):
            self.adv(3)
            end = self.s.find(q * 3, self.i)
            if end < 0:
                raise ValueError
            while self.s.startswith(q, end + 3):  # up to two quotes may end the content
                end += 1
            val = self.s[self.i:end]
            self.adv(end + 3 - self.i)
            return val
        self.adv()
        buf: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == q:
                self.adv()
                return "".join(buf)
            if c == "\\" and q == '"':
                buf.append(self.s[self.i:self.i + 2])
                self.adv(2)
                continue
            if c == "\n":
                raise ValueError
            buf.append(c)
            self.adv()
        raise ValueError

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip_ws(False)
            c = self.peek()
            if c in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.i
                while self.i < len(self.s) and (self.s[self.i].isalnum() or self.s[self.i] in "_-"):
                    self.i += 1
                if self.i == start:
                    raise ValueError
                parts.append(self.s[start:self.i])
            self.skip_ws(False)
            if self.peek() == ".":
                self.adv()
                continue
            return parts

    # -- grammar --------------------------------------------------------------------------
    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_ws(True)
            if self.i >= len(self.s):
                return
            line = self.line
            if self.peek() == "[":
                double = self.peek(1) == "["
                self.adv(2 if double else 1)
                path = tuple(self.key())
                self.adv(2 if double else 1)
                if double:
                    n = self.aot.get(path, 0)
                    self.aot[path] = n + 1
                    table = (*self._resolve(path), n)
                else:
                    table = self._resolve(path)
                self.out.setdefault(table, line)
                if double:
                    self.out.setdefault(table[:-1], line)
                continue
            self.pair(table)

    def _resolve(self, path: Path) -> Path:
        """Insert the current index of any array of tables the header's prefix names."""
        out: list = []
        for k in path:
            out.append(k)
            n = self.aot.get(tuple(p for p in out if isinstance(p, str)))
            if n is not None and tuple(out) != path:
                out.append(n - 1)
        return tuple(out)

    def pair(self, table: Path) -> None:
        """``key = value`` in ``table`` (a table, or an inline table's path)."""
        line = self.line
        path = (*table, *self.key())
        self.out.setdefault(path, line)
        self.skip_ws(False)
        self.adv()  # '='
        self.skip_ws(False)
        self.value(path)

    def value(self, path: Path) -> None:
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.adv()
            idx = 0
            while True:
                self.skip_ws(True)
                if self.peek() == "]":
                    self.adv()
                    return
                self.out.setdefault((*path, idx), self.line)
                self.value((*path, idx))
                idx += 1
                self.skip_ws(True)
                if self.peek() == ",":
                    self.adv()
        elif c == "{":
            self.adv()
            while True:
                self.skip_ws(True)
                if self.peek() == "}":
                    self.adv()
                    return
                self.pair(path)
                self.skip_ws(True)
                if self.peek() == ",":
                    self.adv()
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.i += 1
            if self.i == len(self.s) and not c:
                raise ValueError

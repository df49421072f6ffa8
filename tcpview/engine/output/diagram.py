"""Ladders as text other tools draw: Mermaid's ``sequenceDiagram`` and PlantUML's sequence
diagrams. One arrow per segment, labelled as the ladder labels it (with its analysis tags),
and each endpoint's new state as a note over it where it changes; a timer's expiry is a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..timeline.timeline import Timeline
from .ladder import LadderRow, ladder_rows, marks


def _rows(tl: Timeline, cids: Iterable[int]) -> Iterator[tuple[str, str, LadderRow]]:
    """(client name, server name, ladder row) of each row of the connections, in order."""
    for cid in cids:
        c = tl.conns[cid]
        for row in ladder_rows(tl, cid):
            yield c.client_text(), c.server_text(), row


def _label(row: LadderRow) -> str:
    m = marks(row)
    return f"{row.label} {m}" if m else row.label


def _participants(tl: Timeline, cids: list[int]) -> dict[str, str]:
    names: dict[str, str] = {}
    for cid in cids:
        c = tl.conns[cid]
        for text in (c.client_text(), c.server_text()):
            names.setdefault(text, f"P{len(names)}")
    return names


def _mermaid_text(text: str) -> str:
    # Mermaid ends a statement at ';' and reads '#...;' as an entity: both written as entities
    return "".join({"#": "#35;", ";": "#59;"}.get(ch, ch) for ch in text)


def _events(tl: Timeline, cids: list[int], names: dict[str, str]) -> Iterator[tuple[str, str, str, str]]:
    """``("arrow", src, dst, label)`` per segment and ``("note", alias, "", text)`` per state
    change, in ladder order."""
    for client, server, row in _rows(tl, cids):
        a, b = names[client], names[server]
        if row.seg >= 0:
            src, dst = (a, b) if row.c2s else (b, a)
            yield "arrow", src, dst, _label(row)
        for alias, state in ((a, row.client_state), (b, row.server_state)):
            if state:
                yield "note", alias, "", f"{state} ({row.label})" if row.seg < 0 else state


def mermaid(tl: Timeline, cids: list[int]) -> str:
    """The connections' ladders as one Mermaid sequence diagram."""
    names = _participants(tl, cids)
    out = ["sequenceDiagram"]
    out += [f"    participant {alias} as {_mermaid_text(text)}" for text, alias in names.items()]
    for kind, a, b, text in _events(tl, cids, names):
        out.append(f"    {a}->>{b}: {_mermaid_text(text)}" if kind == "arrow" else
                   f"    Note over {a}: {_mermaid_text(text)}")
    return "\n".join(out) + "\n"


def _plantuml_text(text: str) -> str:
    return text.replace("\\", "\\\\")


def plantuml(tl: Timeline, cids: list[int]) -> str:
    """The connections' ladders as one PlantUML sequence diagram."""
    names = _participants(tl, cids)
    out = ["@startuml"]
    out += [f'participant "{text}" as {alias}' for text, alias in names.items()]
    for kind, a, b, text in _events(tl, cids, names):
        out.append(f"{a} -> {b} : {_plantuml_text(text)}" if kind == "arrow" else
                   f"note over {a} : {_plantuml_text(text)}")
    out.append("@enduml")
    return "\n".join(out) + "\n"

"""The interface picker (``i`` in ``tcpview live``): choose the interface to capture on.

Lists this host's interfaces with their up/down state and IPv4/IPv6 addresses (read without
privileges, :func:`tcpview.sources.live.ifaces.list_interfaces`), plus ``any``; the interface being
captured is marked. Enter picks one (the screen is dismissed with its name), Esc keeps the
current capture. The list is read on a worker thread, so the screen opens at once.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...sources.live.ifaces import InterfaceInfo, default_interface, list_interfaces
from ...textutil import safe

ANY = "any"


class InterfacePicker(ModalScreen[str | None]):
    """A list of interfaces; dismissed with the chosen name, or None on Esc.

    Args:
        current: the interface being captured now (marked ``●``).
        note: a line under the list saying what switching keeps (filter, saving).
        interfaces: the interfaces to list; None reads them (on a worker thread).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="picker.cancel", tooltip="Keep the current capture")]

    COMPONENT_CLASSES = {"iface-picker--current", "iface-picker--name", "iface-picker--up",
                         "iface-picker--down", "iface-picker--addr", "iface-picker--dim"}

    DEFAULT_CSS = """
    InterfacePicker { align: center middle; }
    InterfacePicker > #picker-box {
        width: auto; min-width: 50; max-width: 95%; height: auto; max-height: 90%;
        border: round $border; border-title-color: $text; background: $surface; padding: 0 1;
    }
    InterfacePicker #picker-list { width: auto; height: auto; max-height: 20; border: none; padding: 0; }
    InterfacePicker #picker-note { color: $text-muted; width: auto; }
    InterfacePicker > .iface-picker--current { text-style: bold; color: $text-accent; }
    InterfacePicker > .iface-picker--name { text-style: bold; }
    InterfacePicker > .iface-picker--up { color: $text-success; }
    InterfacePicker > .iface-picker--down { color: $text-muted; }
    InterfacePicker > .iface-picker--addr { color: $text; }
    InterfacePicker > .iface-picker--dim { color: $text-muted; }
    """

    def __init__(self, current: str, note: str = "", interfaces: list[InterfaceInfo] | None = None) -> None:
        super().__init__()
        self.current = current
        self.note = note
        self.interfaces: list[InterfaceInfo] | None = interfaces
        """What is listed (None until read)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box") as box:
            box.border_title = "Capture on"
            box.border_subtitle = "enter capture · esc keep"
            yield OptionList(Option("reading the interfaces…", disabled=True), id="picker-list")
            yield Label(Text(self.note), id="picker-note")

    def on_mount(self) -> None:
        self.query_one("#picker-note").display = bool(self.note)
        if self.interfaces is None:
            self._read()
        else:
            self._fill(self.interfaces)

    @work(thread=True, exclusive=True, group="interfaces", exit_on_error=False)
    def _read(self) -> None:
        found = list_interfaces()
        self.app.call_from_thread(self._fill, found)

    def _fill(self, interfaces: list[InterfaceInfo]) -> None:
        self.interfaces = interfaces
        ol = self.query_one(OptionList)
        ol.clear_options()
        default = default_interface()
        width = max([len(i.name) for i in interfaces] + [len(ANY)])
        options = [Option(self._prompt(i, width, default), id=i.name) for i in interfaces]
        any_text = self._line(ANY, width, "", "every interface (link headers dropped)", ANY == self.current)
        options.append(Option(any_text, id=ANY))
        ol.add_options(options)
        names = [o.id for o in options]
        ol.highlighted = names.index(self.current) if self.current in names else 0
        ol.focus()

    def _prompt(self, info: InterfaceInfo, width: int, default: str) -> Text:
        addrs = "  ".join(info.addresses) if info.addresses else "no address"
        extra = "  (default route)" if info.name == default and default != "lo" else ""
        return self._line(info.name, width, info.state, addrs + extra, info.name == self.current, info.up)

    def _line(self, name: str, width: int, state: str, rest: str, current: bool, up: bool = True) -> Text:
        st = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● " if current else "  ", st("iface-picker--current", partial=True))
        # names and addresses are the host's, but still never read as markup
        text.append(safe(name).ljust(width), st("iface-picker--name", partial=True))
        text.append("  ")
        text.append(state.ljust(10), st("iface-picker--up" if up else "iface-picker--down", partial=True))
        text.append(safe(rest), st("iface-picker--addr" if state else "iface-picker--dim", partial=True))
        return text

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close the picker; the capture goes on as it was."""
        self.dismiss(None)

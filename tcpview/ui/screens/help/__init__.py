"""The help screen (``?``) and the key table it shares with the docs."""

from .keys import key_rows, keys_markdown
from .screen import HelpScreen

__all__ = ["HelpScreen", "key_rows", "keys_markdown"]

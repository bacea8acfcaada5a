"""One command line in, one answer out: what the operator consoles share.

A console is a table of commands (name -> function of the remaining words). Reading the
line, finding the command and turning a mistake into a message that says what to type
instead happen here, once.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from rich.console import Console

Command = Callable[[list[str]], None]


class LineConsole:
    def __init__(self, out: Console, commands: dict[str, Command]) -> None:
        self.out = out
        self.commands = commands

    def execute(self, line: str) -> bool:
        """Run one command line; False means quit."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self.out.print(f"[red]cannot read that line: {exc}[/red]")
            return True
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        if name in ("quit", "exit"):
            return False
        command = self.commands.get(name)
        if command is None:
            self.out.print(f"[red]unknown command {name!r}[/red]; type `help` for the list")
            return True
        try:
            command(args)
        except (ValueError, KeyError, IndexError, TimeoutError, RuntimeError) as exc:
            self.out.print(f"[red]{name}: {exc}[/red]")
            return True
        self.after(name)
        return True

    def after(self, name: str) -> None:
        """Called after a command ran without error (a console may wait for its answer)."""

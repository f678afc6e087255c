"""Shared CLI pieces: the console, workspace resolution, options used by several verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

import picsift
from picsift.workspace.store import Workspace

# soft_wrap: messages (paths, hints to copy and paste) stay on one line in logs and pipes,
# where rich would otherwise break them at 80 columns; tables still fit the width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceArg = typer.Argument(
    Path("."), help="Corpus folder (its .picsift workspace is used) or a workspace folder."
)
WorkersOpt = typer.Option(None, "--workers", "-j", help="Worker processes (default: all cores).")
EngineOpt = typer.Option("local", "--engine", help="Where the work runs: local (process pool) or ray (a Ray cluster; docs/scale.md).")
AddressOpt = typer.Option(None, "--address", help="Ray cluster for --engine ray: auto (default), ray://host:10001, or local (start one on this machine).")


def open_existing(path: Path) -> Workspace:
    """Open a workspace that must already exist (read verbs never create one)."""
    return picsift.open(path, create=False)


class DefaultRunGroup(TyperGroup):
    """A verb group whose first argument, when not a sub-command, means `run ARGS...`
    (`picsift copies PATH` is `picsift copies run PATH`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

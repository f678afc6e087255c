"""The `picsift` command: one typer app, one module per verb group."""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape

from picsift.cli.cluster import (agreement_command, cluster_command, sample_command,
                                 validate_pairs_command)
from picsift.cli.common import err_console
from picsift.cli.colors import colors_command
from picsift.cli.copies import app as copies_app
from picsift.cli.crop import crop_command
from picsift.cli.semantic import embed_command, models_app, search_command
from picsift.cli.sort import app as sort_app
from picsift.cli.classify import predict_command, train_command
from picsift.cli.demo import demo_command
from picsift.cli.describe import describe_command, detect_command
from picsift.cli.export import export_command
from picsift.cli.faces import app as faces_app
from picsift.cli.inspect import duplicates_command, errors_command, info_command
from picsift.cli.report import report_command
from picsift.cli.scan import scan_command
from picsift.cli.serve import serve_command
from picsift.cli.text import text_command, topics_command
from picsift.errors import PicsiftError

app = typer.Typer(
    name="picsift",
    help="Turn a pile of images and videos into data: scan, duplicates, export, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("scan")(scan_command)
app.command("duplicates")(duplicates_command)
app.command("errors")(errors_command)
app.command("info")(info_command)
app.command("export")(export_command)
app.command("report")(report_command)
app.command("demo")(demo_command)
app.add_typer(copies_app, name="copies")
app.add_typer(models_app, name="models")
app.command("embed")(embed_command)
app.add_typer(sort_app, name="sort")
app.command("train")(train_command)
app.command("predict")(predict_command)
app.command("search")(search_command)
app.command("cluster")(cluster_command)
app.command("sample")(sample_command)
app.command("validate-pairs")(validate_pairs_command)
app.command("agreement")(agreement_command)
app.command("text")(text_command)
app.command("topics")(topics_command)
app.add_typer(faces_app, name="faces")
app.command("colors")(colors_command)
app.command("describe")(describe_command)
app.command("detect")(detect_command)
app.command("serve")(serve_command)
app.command("crop")(crop_command)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry point: PicsiftError becomes a one-line message and exit code 2, Ctrl-C exit 130."""
    try:
        app()
    except PicsiftError as exc:
        # escape: paths in the message may contain [brackets] that are not rich markup.
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]: what was stored is kept; run again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()

"""The `tuneforge` command: every command, grouped as the help lists them."""

from __future__ import annotations

import typer

from tuneforge.cli import demo, export, local, remote, servers

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Self-hosted, Vertex AI-compatible model tuning.",
)

# Runs and data on this machine.
app.command()(local.tune)
app.command()(local.distill)
app.command()(local.validate)
app.command()(local.models)
app.command()(export.export)
app.command()(demo.demo)
# Servers.
app.command()(servers.serve)
app.command()(servers.worker)
app.command()(servers.openapi)
# A server's resources.
app.add_typer(remote.jobs_app, name="jobs")
app.add_typer(remote.pipelines_app, name="pipelines")
app.command()(remote.deploy)
app.command()(remote.predict)
app.command()(remote.chat)

"""ffctl: a thin click layer over ff_client's API; messages go to stderr, data to stdout.

The only package of ours that imports click: local.py (plan, run), analyze.py, compare.py, suggest.py, overtrain.py,
transfer.py, cluster.py (submit, status, logs, delete), options.py (options several commands take), output.py
(terminal output). What the commands do is ff_client.api's.
"""

from __future__ import annotations

import click

from ff_client.cli import analyze, cluster, compare, local, output, overtrain, suggest, transfer
from ff_core.errors import FlopsFitError, UsageError


class _Group(click.Group):
    """One abort path: every deliberate error becomes a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise click.UsageError(str(error)) from None
        except FlopsFitError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="flops-fit")
def main() -> None:
    """flops-fit: plan, train and fit compute-optimal scaling laws."""
    output.route_warnings()


for _module in (local, analyze, compare, suggest, transfer, overtrain, cluster):
    for _command in _module.COMMANDS:
        main.add_command(_command)

"""Where `tabcoder sft data` lived before the CLI became the package `tabcoder.cli`; kept so that
`from tabcoder.cli_sft_data import data_group` (the tests') still works. New code imports
`tabcoder.cli.sft_data`."""

from tabcoder.cli.sft_data import data_group

__all__ = ["data_group"]

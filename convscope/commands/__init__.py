"""One module per ``convscope`` subcommand (see :mod:`convscope.cli`)."""

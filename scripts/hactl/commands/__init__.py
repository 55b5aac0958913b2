"""One thin typer module per `hactl` verb; `hactl.cli` only registers them."""

"""(being written this session)."""

import typer

hardware_app = typer.Typer(help="Hardware: latency measurement and lookup tables.")

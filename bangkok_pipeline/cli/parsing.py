"""Subcommands whose `--help` says what they do and shows examples, and `--version`."""

import argparse
from importlib.metadata import PackageNotFoundError, version


def add_command(
    subcommands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    summary: str,
    *examples: str,
    **options: object,
) -> argparse.ArgumentParser:
    """A subcommand listed with `summary`; its own `--help` starts with it and ends with the
    `examples` (command lines, shown as given)."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None
    return subcommands.add_parser(
        name,
        help=summary,
        description=summary[:1].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **options,  # type: ignore[arg-type]
    )


def package_version() -> str:
    try:
        return version("bangkok-pipeline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"

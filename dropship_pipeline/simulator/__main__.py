"""``python -m dropship_pipeline.simulator``: serve the simulated Dropship service."""

from __future__ import annotations

import argparse
import sys

from dropship_pipeline.simulator import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dropship_pipeline.simulator", description=cli.DESCRIPTION
    )
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

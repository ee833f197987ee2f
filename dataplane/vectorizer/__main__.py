"""``vectorizer`` (the console script) and ``python -m vectorizer``."""

import sys

from vectorizer import stopsignals


def main() -> int:
    if sys.argv[1:2] == ["serve"]:  # before the modules load (see stopsignals)
        stopsignals.note()
    from vectorizer.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())

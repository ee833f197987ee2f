"""``python -m vectorizer_operator``: the same as ``vectorizer operator``."""

import sys

from vectorizer_operator.main import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

"""Run the `pooling_224` experiment: `python experiments/pooling_224.py [--quick | --full] [--seeds K] [--out DIR]`.

The experiment itself lives in `cnnjax/experiments/pooling_224.py`; this script is the same as
`cnnjax experiment pooling_224 ...`.
"""

import sys

from cnnjax.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", "pooling_224", *sys.argv[1:]]))

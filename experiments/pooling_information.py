"""Run the `pooling_information` experiment: `python experiments/pooling_information.py [--quick | --full] [--seeds K] [--out DIR]`.

The experiment itself lives in `cnnjax/experiments/pooling_information.py`; this script is the same as
`cnnjax experiment pooling_information ...`.
"""

import sys

from cnnjax.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", "pooling_information", *sys.argv[1:]]))

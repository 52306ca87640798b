"""Run the `pooling_224` experiment: `python experiments/pooling_224.py [--quick | --full] [--seeds K] [--out DIR]`.

The experiment itself lives in `cnnjax/experiments/pooling_224.py`; this script is the same as
`cnnjax experiment pooling_224 ...`.
"""

import sys

import cnnjax

cnnjax.configure_xla(cpu_devices="cores")  # before anything imports JAX; seeds side by side

from cnnjax.cli import main  # noqa: E402

if __name__ == "__main__":
    cnnjax.restart_with_tcmalloc()  # where installed: the same run, faster (cnnjax/_malloc.py)
    sys.exit(main(["experiment", "pooling_224", *sys.argv[1:]]))

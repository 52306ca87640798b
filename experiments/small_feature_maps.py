"""Run the `small_feature_maps` experiment: `python experiments/small_feature_maps.py [--quick | --full] [--seeds K] [--out DIR]`.

The experiment itself lives in `cnnjax/experiments/small_feature_maps.py`; this script is the same as
`cnnjax experiment small_feature_maps ...`.
"""

import sys

import cnnjax

cnnjax.configure_xla(cpu_devices="cores")  # before anything imports JAX; seeds side by side

from cnnjax.cli import main  # noqa: E402

if __name__ == "__main__":
    cnnjax.restart_with_tcmalloc()  # where installed: the same run, faster (cnnjax/_malloc.py)
    sys.exit(main(["experiment", "small_feature_maps", *sys.argv[1:]]))

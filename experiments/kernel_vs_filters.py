"""Run the `kernel_vs_filters` experiment: `python experiments/kernel_vs_filters.py [--quick | --full] [--seeds K] [--out DIR]`.

The experiment itself lives in `cnnjax/experiments/kernel_vs_filters.py`; this script is the same as
`cnnjax experiment kernel_vs_filters ...`.
"""

import sys

import cnnjax

cnnjax.configure_xla(cpu_devices="cores")  # before anything imports JAX; seeds side by side

from cnnjax.cli import main  # noqa: E402

if __name__ == "__main__":
    cnnjax.restart_with_tcmalloc()  # where installed: the same run, faster (cnnjax/_malloc.py)
    sys.exit(main(["experiment", "kernel_vs_filters", *sys.argv[1:]]))

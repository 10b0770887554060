"""``python -m kernbench``: the same command line as the ``kernbench`` script."""
import sys

from .cli import main

sys.exit(main())

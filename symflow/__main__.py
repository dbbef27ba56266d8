"""`python -m symflow ...` is the `symflow` command."""

import sys

from symflow.cli import main

sys.exit(main())

"""`python -m compiler` is `mschema`."""

import sys

from compiler.cli import main

sys.exit(main())

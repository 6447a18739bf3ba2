"""`python -m compiler` is `mschema`."""

import sys

from .cli import main

sys.exit(main())

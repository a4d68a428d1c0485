"""`python -m lab up` (`sudo make lab`) and `python -m lab down` (`sudo make lab-down`)."""

import sys

from lab.cli import main

sys.exit(main())

import sys

from lrbench.cli import main

sys.exit(main())

import sys

from urbanst.cli import main

sys.exit(main())

import sys

from compile.cli import main

sys.exit(main())

import sys

from simfleet.cli import main

sys.exit(main())

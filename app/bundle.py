"""``python -m app.bundle DIR``: the roles verify a bundle with the release venv's interpreter through this
entry; the check itself is bundle_contract.files."""

import sys

from bundle_contract.files import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m app.bundle"))

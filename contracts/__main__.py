"""`python -m sluice_contracts generate|check [DIR]`: schemas, golden-example checksums and the
compatibility check for a team's own contract folder (see `contracts.tools`)."""

import sys

from contracts.tools import main

if __name__ == "__main__":
    sys.exit(main(prog=f"python -m {__package__}"))

"""``python -m worker.local.personalize``: run the local Personalize (a development/test stand-in)."""

import sys

from worker.local.personalize.server import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

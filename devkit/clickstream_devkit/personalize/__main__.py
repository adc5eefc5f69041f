"""``python -m clickstream_devkit.personalize``: run the local Personalize (a development/test stand-in)."""

import sys

from clickstream_devkit.personalize.server import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``python -m lmvae.cli``: the same as the ``lmvae`` console script."""

import sys

from lmvae.cli import main

sys.exit(main())

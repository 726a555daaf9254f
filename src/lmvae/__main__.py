"""``python -m lmvae``: the ``lmvae`` command, for launchers that start a module
(``accelerate launch -m lmvae train ...``, ``torchrun -m lmvae train ...``)."""

import sys

from lmvae.cli import main

sys.exit(main())

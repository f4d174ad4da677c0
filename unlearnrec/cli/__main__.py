"""``python -m unlearnrec.cli``: the ``unlearnrec`` command."""

import sys

from unlearnrec.cli.app import main

sys.exit(main())

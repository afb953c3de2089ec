"""``python -m sink`` is the ``mailsink`` command."""
import sys

from .cli import main

sys.exit(main())

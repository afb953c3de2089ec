"""``python -m probe probe|send|sendmail ...``: the probe's commands without the sink."""
import sys

from .cli import main

sys.exit(main())

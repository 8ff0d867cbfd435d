"""``python -m tinynet ...`` runs the ``tinynet`` command (see ``tinynet.cli``)."""
from .cli import main

raise SystemExit(main())

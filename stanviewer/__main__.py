"""``python -m stanviewer`` runs the command-line interface."""

from stanviewer.cli import main

raise SystemExit(main())

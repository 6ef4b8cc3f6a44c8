import sys

from edge_str.cli import main

sys.exit(main())

import sys

from earthgraph.data.cli import main

sys.exit(main())

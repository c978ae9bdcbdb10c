import sys

from callbuddy_pbx.cli import main

sys.exit(main())

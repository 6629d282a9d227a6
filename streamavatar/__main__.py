import sys

from streamavatar.cli import main

sys.exit(main())

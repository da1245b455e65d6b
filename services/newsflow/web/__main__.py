import sys

from newsflow.web.service import main

sys.exit(main())

import sys

from visionops.train.loop import main

sys.exit(main())

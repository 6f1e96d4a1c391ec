import sys

from dicom_node.cli import main

sys.exit(main())

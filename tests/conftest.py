"""Makes helper modules in tests/ (e.g. config_schemas) importable under pytest's importlib import mode."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

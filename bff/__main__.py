import sys

from bff.cli import main

# Guarded: a worker process (the CSV import's planner) imports the parent's main module.
if __name__ == "__main__":
    sys.exit(main())

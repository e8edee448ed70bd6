"""`python -m tabcoder.cli ...` runs the `tabcoder` command line."""

from tabcoder.cli import main

if __name__ == "__main__":
    main()

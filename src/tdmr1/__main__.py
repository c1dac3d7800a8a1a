"""``python -m tdmr1``: the same command line as the ``tdmr1`` script (for environments without it)."""

from tdmr1.cli.app import main

if __name__ == "__main__":
    main()

"""Command-line interface: `tdmr1 <command>`, a thin layer over the library."""

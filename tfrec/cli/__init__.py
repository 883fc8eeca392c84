"""The `tfrec` command line: one thin module per command group; the logic lives in the library."""

"""The lalm-bench command line."""

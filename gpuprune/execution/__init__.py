"""Where chunk tasks run: in-process, local worker processes, any Executor."""

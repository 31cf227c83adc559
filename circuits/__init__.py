"""The boolean side: circuits, inputs, exact evaluation, compilers, tracing and theory."""

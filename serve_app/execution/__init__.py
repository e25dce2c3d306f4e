"""Running tools: child processes with limits, and the executor that runs one tool call."""

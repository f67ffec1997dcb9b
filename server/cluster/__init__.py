"""Running several nodes as one deployment: the carrier between nodes and what builds on it."""

"""Reading and writing Snudda's files: network index, chunk reader, output writer."""

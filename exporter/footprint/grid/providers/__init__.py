"""One module per grid intensity provider."""

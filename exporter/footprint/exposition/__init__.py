"""The only place that knows metric names: the catalog, the families, the text format."""

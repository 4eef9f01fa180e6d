"""HTTP: the server, its web config, the JSON API and the live page."""

"""Grid carbon intensity: providers, the fallback chain and the feed the accountant reads."""

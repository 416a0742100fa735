"""Getting a notification to its sinks: the dispatcher, retries, the retry lane and its
retrier, dedup, endpoint health (breaker, rate limit), enrichment and the sinks."""

"""Running it: health and metrics endpoints, start-up checks, the GC tuning."""

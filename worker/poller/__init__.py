"""`worker run`: the stream read directly, shard by shard, under one app lease."""

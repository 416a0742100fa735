"""What the worker keeps in its DynamoDB state table: checkpoints, the lease, the
dead-letter store and its holds, sink state."""

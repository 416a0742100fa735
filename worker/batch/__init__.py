"""A page of records settled as a batch: detect, dispatch, dead-letter, checkpoint.
Shared by the poller's readers and the KCL record processor."""

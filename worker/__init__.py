"""orderstream worker: DynamoDB Stream records in, order notifications out."""

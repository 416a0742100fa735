"""The domain, pure: stream records, what a change means, rules, models, errors, the
runtime seam and the counters. No AWS SDK and nothing of the layers above."""

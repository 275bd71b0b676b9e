"""intake: the front door for writes. Validates, deduplicates, files, publishes ComplaintFiled."""

"""The X API v2 boundary: the search, counts and usage client, the batch compliance client, and
what their use costs. Knows nothing of Luigi nor of stored data."""

"""Where everything is stored and what is complete: S3 objects, their keys, the raw codecs, the
curated Delta table, and the completeness of any number of days. deltalake is imported only by
`store.lake`, where a day is committed or read."""

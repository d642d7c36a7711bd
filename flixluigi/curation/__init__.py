"""Raw API pages -> curated rows, pure: the schema, the curator, the privacy rule and its gate,
and the keyed pseudonyms. Nothing here touches S3 or Luigi."""

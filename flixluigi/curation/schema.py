"""The curated table's schema, and what curation reads of the raw pages.

A change to SCHEMA (or to what a column holds) raises SCHEMA_VERSION: it is part of every day's
build, so every stored day becomes stale and is rebuilt from its raw fetch.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2
TIMESTAMP = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([
    ("tweet_id", pa.string()),
    ("created_at", TIMESTAMP),
    ("date", pa.date32()),
    ("text", pa.string()),
    ("lang", pa.string()),
    ("source", pa.string()),
    ("conversation_id", pa.string()),
    ("author_id", pa.string()),
    ("author_location", pa.string()),
    ("author_followers_count", pa.int64()),
    ("author_following_count", pa.int64()),
    ("author_tweet_count", pa.int64()),
    ("author_verified", pa.bool_()),
    ("author_created_at", TIMESTAMP),
    ("hashtags", pa.list_(pa.string())),
    ("mentioned_user_ids", pa.list_(pa.string())),
    ("in_reply_to_user_id", pa.string()),
    ("is_retweet", pa.bool_()),
    ("is_reply", pa.bool_()),
    ("is_quote", pa.bool_()),
    ("referenced_tweet_ids", pa.list_(pa.string())),
    ("retweet_count", pa.int64()),
    ("reply_count", pa.int64()),
    ("like_count", pa.int64()),
    ("quote_count", pa.int64()),
    ("impression_count", pa.int64()),
    ("url_domains", pa.list_(pa.string())),
    ("possibly_sensitive", pa.bool_()),
    ("edit_chain_id", pa.string()),
    ("edit_history_tweet_ids", pa.list_(pa.string())),
    ("processed_at", TIMESTAMP),
    ("pseudonym_key_id", pa.string()),
    ("schema_version", pa.int32()),
    ("build_id", pa.string()),
], metadata={"flixluigi.schema_version": str(SCHEMA_VERSION)})
PSEUDONYM_COLUMNS = ("author_id", "in_reply_to_user_id", "mentioned_user_ids")
# The gate checks these for raw user ids (or for pseudonyms when shared so), every other string column with the rule.
TWEET_ID_COLUMNS = ("tweet_id", "conversation_id", "referenced_tweet_ids", "edit_chain_id", "edit_history_tweet_ids")

STRING, INT64 = pa.string(), pa.int64()
# A long post's full text and its mentions: `note_tweet`, or `note_post` in X's newer naming.
NOTE = pa.struct([("text", STRING), ("entities", pa.struct([("mentions", pa.list_(pa.struct([("username", STRING), ("id", STRING)])))]))])
NOTE_FIELDS = ("note_tweet", "note_post")
# What the flattening reads of the raw objects; everything else in them is ignored.
RAW_TWEET = pa.struct([
    ("id", STRING), ("created_at", STRING), ("text", STRING), ("lang", STRING), ("source", STRING), ("conversation_id", STRING),
    *((name, NOTE) for name in NOTE_FIELDS),
    ("author_id", STRING), ("in_reply_to_user_id", STRING), ("possibly_sensitive", pa.bool_()),
    ("edit_history_tweet_ids", pa.list_(STRING)),
    ("referenced_tweets", pa.list_(pa.struct([("type", STRING), ("id", STRING)]))),
    ("public_metrics", pa.struct([("retweet_count", INT64), ("reply_count", INT64), ("like_count", INT64), ("quote_count", INT64),
                                  ("impression_count", INT64)])),
    ("entities", pa.struct([("hashtags", pa.list_(pa.struct([("tag", STRING)]))),
                            ("mentions", pa.list_(pa.struct([("username", STRING), ("id", STRING)]))),
                            ("urls", pa.list_(pa.struct([("expanded_url", STRING)])))])),
])
RAW_USER = pa.struct([
    ("id", STRING), ("username", STRING), ("name", STRING), ("location", STRING), ("verified", pa.bool_()), ("created_at", STRING),
    ("public_metrics", pa.struct([("followers_count", INT64), ("following_count", INT64), ("tweet_count", INT64)])),
])
RAW_PAGE = pa.schema([
    ("data", pa.list_(RAW_TWEET)),
    ("includes", pa.struct([("users", pa.list_(RAW_USER))])),
    ("errors", pa.list_(pa.struct([("resource_type", STRING), ("parameter", STRING), ("value", STRING), ("resource_id", STRING),
                                   ("detail", STRING)]))),
])

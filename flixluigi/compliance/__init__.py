"""X's batch compliance results on stored days: the pure rules (`rules`) and the run (`apply`)."""

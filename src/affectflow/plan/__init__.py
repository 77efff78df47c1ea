"""What the workflow decides when it is parsed: every job's rerun key, and the checks that config keys fit."""
